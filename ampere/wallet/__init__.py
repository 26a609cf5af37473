"""BIP84 (native segwit) on-chain wallet: keys, UTXO tracking from the chain, coin selection, signing."""
