"""The early-exit runtime: where each sentence of a stream leaves (`sentences`), and the early-exit and DVFS
policies that decide how each sentence is run (`exit_policies`)."""
