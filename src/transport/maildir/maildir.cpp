// placeholder until the Maildir transport lands
