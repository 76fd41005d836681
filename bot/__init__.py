"""The callback bot: verify, decrypt, store, acknowledge, then act on each WeCom event."""
