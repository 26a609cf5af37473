"""Payment channels: `transactions` (BOLT 3 transactions), `twoway` (the BOLT 2 channel state
machine), `signer` (the keys behind it), `micropayment` (one-way channels) and `sweep`."""
