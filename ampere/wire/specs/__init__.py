"""Wire-format tables extracted from the BOLTs (CSV), and the extractor that produced them."""
