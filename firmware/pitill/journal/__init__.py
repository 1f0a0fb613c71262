"""The journal: the durable store of every transaction, sealing of card data, store-and-forward."""
