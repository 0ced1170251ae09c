"""The code of a fitted autoencoder: encoding, decoding, and ordered prefixes."""
