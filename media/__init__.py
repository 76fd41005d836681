"""The media library: images stored once, handed to WeCom as temporary media when a message needs them."""
