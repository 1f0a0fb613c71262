"""AcquirerHost: a small ISO 8583 authorization host for the simulator and the tests.

Split along its parts: policy.py (what a sandbox issuer answers), chaos.py (faults on top of
being up), ledger.py (what the host saw, fsynced, and the net charge), server.py (the TCP/TLS
host and its modes), cli.py (`pitill acquirer`, `python -m pitill.sim.acquirer`). The names
other modules use are re-exported here.
"""

from pitill.sim.acquirer.chaos import ChaosPlan
from pitill.sim.acquirer.cli import main
from pitill.sim.acquirer.ledger import (
    LEDGER_NAME,
    Decision,
    DedupKey,
    net_charged_minor,
    read_ledger,
)
from pitill.sim.acquirer.policy import (
    FINANCIAL_MTIS,
    MESSAGE_CLASS,
    TEST_CARD_DECLINED,
    AdvicePolicy,
    MessageClass,
    Mode,
    accepted,
    acknowledge,
    answer_class,
    decide_sale,
)
from pitill.sim.acquirer.server import AcquirerHost

__all__ = [
    "FINANCIAL_MTIS",
    "LEDGER_NAME",
    "MESSAGE_CLASS",
    "TEST_CARD_DECLINED",
    "AcquirerHost",
    "AdvicePolicy",
    "ChaosPlan",
    "Decision",
    "DedupKey",
    "MessageClass",
    "Mode",
    "accepted",
    "acknowledge",
    "answer_class",
    "decide_sale",
    "main",
    "net_charged_minor",
    "read_ledger",
]
