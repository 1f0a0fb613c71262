"""End of day at the closed-loop host: its own totals of one terminal's day (the 0500's batch),
from its `messages` and `movements` tables, by the rule of core/settlement.py.

Sales and offline sales the host took are debits; top-ups (a deposit) are credits; balance
inquiries it answered count in field 80; a reversal counts when it gave money back for a sale the
supervisor voided (its field 39 was 17); a sale reversed because its answer was lost (68) counts
nowhere, as on the terminal, which never learned whether it was approved.
"""

from __future__ import annotations

from pitill.core.responses import REVERSAL_REASON_CUSTOMER_CANCELLATION, AnswerKind, classify
from pitill.core.responses import ResponseClass as Class
from pitill.core.settlement import Reconciliation, add_to_reconciliation
from pitill.host.store import HostStore
from pitill.upstream.messages import Batch

# A movement that takes money from the card's account is a debit (a sale, online or offline); one
# that puts money on it is a credit (a top-up, or a refund when refunds land): by its sign, so a
# new kind of movement needs no change here. The kinds are core/settlement.py's.
DEBIT, CREDIT = "card", "topup"


def day_totals(store: HostStore, terminal_id: str, batch: Batch) -> Reconciliation:
    # Only the batch's STANs are read (through the primary key): reading every message the
    # terminal ever sent took 0.6 s of the store's one worker per 0500 after 300,000 of them.
    wraps = batch.first_stan > batch.last_stan
    stans = "(m.stan >= ? OR m.stan <= ?)" if wraps else "m.stan BETWEEN ? AND ?"
    rows = store.execute(
        "SELECT m.class, m.stan, m.response_code, m.amount_minor, m.movement_id, m.reversed_by,"
        " m.reason, v.amount_minor FROM messages m LEFT JOIN movements v ON v.id = m.movement_id"
        f" WHERE m.terminal_id = ? AND m.class IN ('sale', 'advice') AND {stans}",
        (terminal_id, batch.first_stan, batch.last_stan),
    ).fetchall()
    # The reason of each reversal that gave money back, by the movement it made.
    reasons = dict(
        store.execute(
            "SELECT movement_id, reason FROM messages WHERE terminal_id = ? "
            "AND class = 'reversal' AND movement_id IS NOT NULL",
            (terminal_id,),
        ).fetchall()
    )
    totals: dict[str, int] = {}
    for klass, stan, code, amount, movement, reversed_by, _reason, moved in rows:
        if not batch.holds(int(stan)):
            continue
        answer = AnswerKind.SALE if klass == "sale" else AnswerKind.ADVICE
        if classify(code, answer) is not Class.APPROVED:
            continue
        if movement is None:  # approved without moving money: a balance inquiry
            add_to_reconciliation(totals, "balance", reversal=False, count=1, amount_minor=0)
            continue
        voided = reasons.get(reversed_by) == REVERSAL_REASON_CUSTOMER_CANCELLATION
        if reversed_by is not None and not voided:
            continue  # reversed because its answer was lost: on neither side
        what = DEBIT if int(moved) < 0 else CREDIT
        taken = int(amount or 0)
        add_to_reconciliation(totals, what, reversal=False, count=1, amount_minor=taken)
        if voided:
            add_to_reconciliation(totals, what, reversal=True, count=1, amount_minor=taken)
    return Reconciliation(**totals)
