"""The hardware description: a target file read into typed dataclasses (`spec`, through `tables`), its memory
levels (`levels`) priced by technology models (`memtech`, `dram`), the parts around the PE array
(`components`), scaling between technology nodes (`scaling`) and DVFS operating points (`dvfs`)."""
