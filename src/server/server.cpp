// placeholder until server lands
