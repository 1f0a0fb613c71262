"""Card data: ISO 7813 tracks, Luhn, expiry, masking, and the card reader's wire protocol."""
