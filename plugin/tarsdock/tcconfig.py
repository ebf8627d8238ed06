"""TC_Config, as TarsCpp implements it: parse line by line, serialize like tostr(), merge."""
# API stub; the implementation lands next. Signatures are the contract.
