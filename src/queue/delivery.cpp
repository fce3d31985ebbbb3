// placeholder until the delivery queue lands
