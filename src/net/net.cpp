// placeholder until net lands
