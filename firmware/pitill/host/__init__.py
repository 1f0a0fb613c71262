"""`pitill host`: the host a closed-loop card program runs (a makerspace, a canteen, a festival).

Accounts with balances in integer minor units, one per card; sales authorized against the
balance; offline sales (advices) always taken and settled after the fact (a debt when they
overdraw, a loss on a blocked card); reversals that restore exactly what a sale took; every
message exactly once, keyed by terminal, STAN and the original's local date and time.

It speaks the same ISO 8583 as the terminal (pitill.upstream.messages, docs/iso8583.md) and
shares nothing else with it: the host never imports the terminal's shell.
"""
