"""The study and sweeps: one configuration evaluated end to end (`evaluate`), chips sized to it (`chips`), the
study's grid (`grid`), its sensitivity, early-exit dimension and outputs (`sensitivity`, `early_exit`,
`report`), design-space sweeps (`sweep`) and their figures (`plots`)."""
