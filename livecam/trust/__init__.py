"""How far to trust a map: the readouts that say whether a map shows what the network used."""
