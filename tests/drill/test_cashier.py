"""The drill's cashier on a real simulated terminal: what it records of each sale."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from pitill.config import Config
from pitill.core.types import OfflineMode
from pitill.drill.report import cash_only_reasons
from pitill.drill.shop import Cashier, Customer, Outcome, Sale, ShopCard, ShopProfile
from pitill.sim.world import SimWorld

CARD = ShopCard(pan="4000056655665556", expiry_yymm="3012")


async def serve(data_dir: Path, customers: list[Customer]) -> list[Sale]:
    config = Config()
    config = dataclasses.replace(
        config, offline=dataclasses.replace(config.offline, mode=OfflineMode.FORCE_OFFLINE)
    )
    world = SimWorld(config, data_dir)
    await world.start()
    try:
        cashier = Cashier(world, ShopProfile())
        return [await cashier.serve(customer, 0.0) for customer in customers]
    finally:
        await world.stop()


def test_cash_only_reasons_count_only_the_sales_that_were_told_cash_only(tmp_path: Path) -> None:
    over_the_floor = Customer(1, 0.0, 5000, CARD, accepts_cash=False, tendered_minor=5000)
    pays_cash = Customer(2, 0.0, 500, None, accepts_cash=True, tendered_minor=1000)
    told, paid = asyncio.run(serve(tmp_path, [over_the_floor, pays_cash]))
    assert told.outcome is Outcome.REFUSED and told.cash_reason == "Offline: over EUR 25.00"
    # FN at SWIPE CARD: a cash sale the terminal never refused a card for.
    assert paid.outcome is Outcome.CASH and paid.rung and paid.cash_reason == ""
    assert cash_only_reasons([told, paid]) == {"Offline: over EUR 25.00": 1}
