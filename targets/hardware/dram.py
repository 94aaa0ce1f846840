"""Off-chip DRAM, whole: energy per access and background power by state, from a datasheet's currents.

A DRAM model (`DRAM_SPECS`) holds one x16 channel's IDD currents per supply
rail, the rails' voltages and its timings (the LPDDR4 channel's as DRAMPower
publishes them, tukl-msd/DRAMPower
memspecs/MICRON_6Gb_LPDDR4-3200_32bit_A.json) and the memory controller's
PHY (energy per bit and area). From them, the way DRAMPower and Micron's
power notes compute DRAM energy (written here, not taken from their code):

- a read (write) burst of BL16 x 16 bit = 32 bytes costs
  sum over supplies of V x (IDD4R - IDD3N) x tBURST (IDD4W for writes), the
  I/O supply (VDDQ) included, tBURST at the data rate the burst currents
  were measured at (a datasheet column faster than the channel: the same
  energy per bit); streaming reads open each 2 KB row once:
  ACT V x (IDD0 - IDD3N) x tRAS plus PRE V x (IDD0 - IDD2N) x tRP per row;
  the controller's PHY adds its energy per bit;
- background, by state: active standby (IDD3N) while bursts move data,
  precharge power-down (IDD2P) in idle gaps, within a transfer and between
  transfers, self-refresh (IDD6) in idle gaps longer than the break-even
  time and while the accelerator sleeps; outside self-refresh, all-bank
  refresh costs V x (IDD5 - IDD3N) x tRFC every tREFI.

A transfer that the accelerator consumes slower than the DRAM delivers (a
GEMM streaming its weights at the array's pace) is not in active standby
all along. Streaming reads open each 2 KB row once (as the access energy
above charges ACT and PRE once per row): the controller reads a row's bursts
back to back at the DRAM's peak rate, precharges it, and waits for the
consumer. The bytes moved over the peak bandwidth are active; the rest of
the transfer's time is cut into one gap per row, and a gap of at least
tCKE + tXP (the minimum time in power-down and its exit; LPDDR4, JEDEC
JESD209-4: tCKE = max(7.5 ns, 4 tCK), tXP = max(7.5 ns, 5 tCK); the
memspec gives 12 and 12 clocks at 1600 MHz) is spent in precharge
power-down, less the tXP of its exit, charged as active standby (an upper
bound: the device draws at most IDD3N while it wakes); shorter gaps stay in
active standby.

`background(busy, span_ns, power, moved)` splits a span into those states
from the intervals during which transfers are in flight and the bytes each
moves, and gives time and energy per state. A DRAM level may instead give its background numbers directly
(`DramPower`), as ZigZag's description does (none).

An LPDDR5 channel (`lpddr5_6400`, the phone NPU's) fills the same fields
on four rails (VDD1, VDD2H, VDD2L, VDDQ): JEDEC's speeds and timings,
counted in its data-strobe clock; its currents are Micron's LPDDR5X
datasheet's where it gives them, and the few it does not give are stand-ins
(see `LPDDR5`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DRAMPOWER = "DRAMPower (tukl-msd/DRAMPower) memspecs/MICRON_6Gb_LPDDR4-3200_32bit_A.json"


@dataclass(frozen=True)
class LPDDR4Spec:
    """One channel of an LPDDR4 or LPDDR5 die: currents in mA per supply rail (`rails`), the rails' voltages,
    timings in clocks."""

    name: str
    clock_mhz: float                      # the DRAM's command clock (data rate = 2 x)
    width_bits: int
    burst: int
    banks: int
    rows: int
    columns: int
    vdd: tuple[float, ...]
    idd0: tuple[float, ...]
    idd2n: tuple[float, ...]
    idd2p: tuple[float, ...]
    idd3n: tuple[float, ...]
    idd4r: tuple[float, ...]
    idd4w: tuple[float, ...]
    idd5: tuple[float, ...]              # all-bank refresh burst
    idd6: tuple[float, ...]              # self-refresh
    t_ras: int
    t_rp: int
    t_rcd: int
    t_rl: int
    t_wl: int
    t_rfc: int
    t_refi: int
    t_xsr: int                           # self-refresh exit
    t_cke: int                           # minimum time in power-down
    t_xp: int                            # power-down exit
    phy_read_pj_per_bit: float
    phy_write_pj_per_bit: float
    phy_area_mm2: float
    source: str
    cited: str = DRAMPOWER                # where the currents come from, in the reports' short label
    rails: tuple[str, ...] = ("VDD1", "VDD2", "VDDQ")
    idd4_mts: float = 0.0                 # data rate the burst currents were measured at (0: the channel's own)

    def __post_init__(self) -> None:
        currents = (self.idd0, self.idd2n, self.idd2p, self.idd3n, self.idd4r, self.idd4w, self.idd5, self.idd6)
        if any(len(c) != len(self.rails) for c in (self.vdd, *currents)):
            raise ValueError(f"{self.name}: every current and the voltages need one value per rail {self.rails}")

    @property
    def tck_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    @property
    def burst_bytes(self) -> int:
        return self.burst * self.width_bits // 8

    @property
    def row_bytes(self) -> int:
        return self.columns * self.width_bits // 8

    @property
    def capacity_bytes(self) -> int:
        return self.banks * self.rows * self.row_bytes

    @property
    def bytes_per_ns(self) -> float:
        return 2 * self.clock_mhz * self.width_bits / 8 / 1000.0

    def _mw(self, a, b=None) -> float:
        b = b if b is not None else (0.0,) * len(self.vdd)
        return sum(v * (x - y) for v, x, y in zip(self.vdd, a, b))  # V x mA = mW

    # -- energy per access (pJ per byte) -------------------------------------------------------------------
    @property
    def t_burst_ns(self) -> float:
        """A burst's duration at the rate its currents were measured at."""
        if self.idd4_mts > 0:
            return self.burst * 1000.0 / self.idd4_mts
        return self.burst / 2 * self.tck_ns

    @property
    def act_pre_pj(self) -> float:
        """Opening and closing one row: ACT over tRAS, PRE over tRP."""
        return (self._mw(self.idd0, self.idd3n) * self.t_ras
                + self._mw(self.idd0, self.idd2n) * self.t_rp) * self.tck_ns

    @property
    def read_pj_per_byte(self) -> float:
        core = self._mw(self.idd4r, self.idd3n) * self.t_burst_ns / self.burst_bytes
        return core + self.act_pre_pj / self.row_bytes + self.phy_read_pj_per_bit * 8

    @property
    def write_pj_per_byte(self) -> float:
        core = self._mw(self.idd4w, self.idd3n) * self.t_burst_ns / self.burst_bytes
        return core + self.act_pre_pj / self.row_bytes + self.phy_write_pj_per_bit * 8

    # -- background ----------------------------------------------------------------------------------------
    @property
    def refresh_mw(self) -> float:
        return self._mw(self.idd5, self.idd3n) * self.t_rfc / self.t_refi

    def power(self, channels: int = 1) -> DramPower:
        active = self._mw(self.idd3n) * channels
        down = self._mw(self.idd2p) * channels
        selfref = self._mw(self.idd6) * channels
        refresh = self.refresh_mw * channels
        exit_pj = active * self.t_xsr * self.tck_ns
        after = exit_pj / max(down + refresh - selfref, 1e-12)
        return DramPower(
            active_mw=active, power_down_mw=down, self_refresh_mw=selfref, refresh_mw=refresh,
            self_refresh_after_ns=after, self_refresh_exit_pj=exit_pj, phy_area_mm2=self.phy_area_mm2 * channels,
            power_down_exit_ns=self.t_xp * self.tck_ns, power_down_min_ns=self.t_cke * self.tck_ns,
            bytes_per_ns=self.bytes_per_ns * channels, chunk_bytes=self.row_bytes * channels,
            source=f"{self.name} x {channels} channel{'s' if channels > 1 else ''}: active standby IDD3N "
            f"{active:.2f} mW while bursts move data ({self.bytes_per_ns * channels:.2f} bytes/ns, a "
            f"{self.row_bytes * channels}-byte row at a time), power-down IDD2P "
            f"{down:.2f} mW in idle gaps of at least tCKE + tXP ({(self.t_cke + self.t_xp) * self.tck_ns:g} ns, "
            f"the exit at active standby), self-refresh IDD6 {selfref:.2f} mW, refresh (IDD5 - IDD3N) x tRFC / tREFI "
            f"{refresh:.2f} mW, from {self.source}; self-refresh entered in idle gaps over {after:.0f} ns (its exit, "
            f"tXSR at active-standby power, {exit_pj:.0f} pJ, against the power it saves)",
            label=f"{self.name}, x{channels}: IDD3N {active:.1f} mW active standby while bursts move data, "
            f"IDD2P {down:.1f} mW power-down, "
            f"IDD6 {selfref:.2f} mW self-refresh, refresh {refresh:.1f} mW, from {self.cited}")

    def describe(self) -> str:
        return (f"{self.name}: read {self.read_pj_per_byte:.1f} pJ/B, write {self.write_pj_per_byte:.1f} pJ/B (burst "
                f"IDD4R/IDD4W - IDD3N over tBURST on {', '.join(self.rails[:-1])} and {self.rails[-1]}, "
                f"ACT/PRE once per "
                f"{self.row_bytes}-byte row, PHY {self.phy_read_pj_per_bit} / {self.phy_write_pj_per_bit} pJ/bit), "
                f"{self.bytes_per_ns:.1f} GB/s, from {self.source}")


@dataclass(frozen=True)
class DramPower:
    """Background power of a DRAM by state, and its controller's PHY area."""

    active_mw: float              # active standby, while a transfer is in flight
    power_down_mw: float          # precharge power-down, short idle gaps
    self_refresh_mw: float        # self-refresh: long idle gaps, and while the accelerator sleeps
    refresh_mw: float             # refresh outside self-refresh
    self_refresh_after_ns: float  # idle gaps longer than this go to self-refresh
    self_refresh_exit_pj: float   # energy of one self-refresh exit
    phy_area_mm2: float           # on the accelerator
    source: str
    label: str = ""               # short provenance for reports
    power_down_exit_ns: float = 0.0             # tXP, at active-standby power
    power_down_min_ns: float = 0.0              # tCKE
    bytes_per_ns: float = math.inf              # peak: bursts move data this fast
    chunk_bytes: int = 0                        # read back to back, then a gap (0: a transfer is active all along)

    @property
    def idle_mw(self) -> float:
        return self.power_down_mw + self.refresh_mw

    def active_ns(self, length_ns: float, nbytes: float) -> float:
        """Of a transfer of `nbytes` spread over `length_ns` (the consumer's pace), the time in active standby:
        its bursts at the peak rate, a chunk (a row) at a time, plus the exit of each gap between chunks long
        enough for power-down (at least tCKE + tXP); shorter gaps stay active."""
        if self.chunk_bytes <= 0 or not math.isfinite(self.bytes_per_ns):
            return length_ns
        moving = nbytes / self.bytes_per_ns
        if moving >= length_ns:
            return length_ns
        chunks = max(1, math.ceil(nbytes / self.chunk_bytes))
        gap = (length_ns - moving) / chunks
        if gap < self.power_down_min_ns + self.power_down_exit_ns:
            return length_ns
        return moving + chunks * self.power_down_exit_ns


PHY = ("PHY: Kim et al., 'A 4266 Mb/s/pin LPDDR4 interface with an asynchronous feedback CTLE and an adaptive "
       "3-step eye detection algorithm for memory controller', IEEE TCAS-II 65(12), 2018: 1.83 pJ/bit burst read, "
       "5.68 pJ/bit burst write (65 nm); PHY and controller area 0.5 mm2 per x16 channel is an assumption (no "
       "public figure found)")

DRAM_SPECS: dict[str, LPDDR4Spec] = {
    "lpddr4_3200": LPDDR4Spec(
        name="LPDDR4-3200 x16 channel (Micron 6 Gb)", clock_mhz=1600.0, width_bits=16, burst=16, banks=8,
        rows=49152, columns=1024, vdd=(1.8, 1.1, 1.1),
        idd0=(3.5, 45.0, 0.75), idd2n=(2.0, 27.0, 0.75), idd2p=(1.2, 3.0, 0.75), idd3n=(2.25, 30.0, 0.75),
        idd4r=(2.25, 275.0, 150.0), idd4w=(2.25, 210.0, 55.0), idd5=(10.0, 90.0, 0.75),
        idd6=(0.3, 0.5, 0.1), t_ras=68, t_rp=29, t_rcd=29, t_rl=28, t_wl=14, t_rfc=448, t_refi=6246, t_xsr=458,
        t_cke=12, t_xp=12,
        phy_read_pj_per_bit=1.83, phy_write_pj_per_bit=5.68, phy_area_mm2=0.5,
        source=f"{DRAMPOWER} (IDD in mA for VDD1 1.8 V, VDD2 1.1 V, VDDQ 1.1 V; clkMhz 1600, RAS 68, RPPB 29, "
        f"RCD 29, RL 28, WL 14, RFCAB 448, REFIAB 6246, XSR 458, CKE 12, XP 12: tCKE = tXP = 7.5 ns, as JEDEC "
        f"JESD209-4's max(7.5 ns, 4 and 5 tCK)); {PHY}"),
}


MICRON_LPDDR5X = ("Micron Y52P LPDDR5X SDRAM datasheet (MT62F1G32D2 family, "
                  "315b-441b-561b-563b-y52p-sdp-ddp-qdp-8dp-lpddr5x.pdf, Rev. H 03/2025), Table 18 'WT IDD "
                  "Parameters - Single Die', x16, 7500 Mb/s column, 16 Gb die, BG mode, BL16, maxima (VDDQ's "
                  "read current typical), as transcribed in isaacyhe/PIMID "
                  "external/ramulator/src/dram/pimid_energy.h at commit 0465dce6dea9793cceff187990c11ac67d663ec9")

LPDDR5 = ("JEDEC JESD209-5B (LPDDR5): 6400 MT/s per pin, a x16 channel of 12.8 GB/s, BL16 (32-byte bursts), 16 "
          "banks of 2 KB rows, tRAS 42 ns, tRPpb 18 ns, tRCD 18 ns, RL 17 and WL 9 of an 800 MHz CK, tREFI 3.906 us, "
          "tXP and tCKE 7.5 ns; supplies VDD1 1.8 V, VDD2H 1.05 V, VDD2L 0.9 V, VDDQ 0.5 V; timings are counted in "
          "the 3.2 GHz data-strobe clock (two transfers per clock). tRFCab 280 ns and tXSR = tRFCab + 7.5 ns: the "
          "8 Gb-per-channel figures. Currents (mA, VDD1 / VDD2H / VDD2L / VDDQ) from the " + MICRON_LPDDR5X + ": "
          "IDD0 3.8 / 53 / 0.2, IDD2N 1.5 / 32.5 / 0.2, IDD3N 2.8 / 40 / 0.2 / 0.6, IDD4R 18 / 390 / 0.2 / "
          "111.9, IDD4W 16.5 / 265 / 0.2 / 0.6, IDD5 (all-bank refresh) on VDD2H 205 / VDD2L 0.2, IDD2P on "
          "VDD2H 3.9 / VDD2L 0.2; the burst currents are charged over a burst at 7500 MT/s (the same energy per "
          "bit at 6400). Not in that transcription, so assumed: VDDQ draws its standby 0.6 mA in every state "
          "that moves no data, and VDD2L its 0.2 mA in self-refresh too. STAND-INS, the Micron LPDDR4 die's "
          "(DRAMPower's memspec): IDD2P 1.2 and IDD5 10 on VDD1, IDD6 0.3 / 0.5 / 0.1 on VDD1 / VDD2H / VDDQ. "
          "Refresh is all-bank (the table's IDD5; per-bank refresh, IDD5PB, is not modelled). The PHY's energy "
          f"per bit and area are the LPDDR4 PHY's. {PHY}")

DRAM_SPECS["lpddr5_6400"] = LPDDR4Spec(
    name="LPDDR5-6400 x16 channel", clock_mhz=3200.0, width_bits=16, burst=16, banks=16,
    rows=65536, columns=1024, vdd=(1.8, 1.05, 0.9, 0.5), rails=("VDD1", "VDD2H", "VDD2L", "VDDQ"),
    idd0=(3.8, 53.0, 0.2, 0.6), idd2n=(1.5, 32.5, 0.2, 0.6), idd2p=(1.2, 3.9, 0.2, 0.6),
    idd3n=(2.8, 40.0, 0.2, 0.6), idd4r=(18.0, 390.0, 0.2, 111.9), idd4w=(16.5, 265.0, 0.2, 0.6),
    idd5=(10.0, 205.0, 0.2, 0.6), idd6=(0.3, 0.5, 0.2, 0.1), idd4_mts=7500.0,
    t_ras=134, t_rp=58, t_rcd=58, t_rl=68, t_wl=36, t_rfc=896, t_refi=12500, t_xsr=920,
    t_cke=24, t_xp=24, phy_read_pj_per_bit=1.83, phy_write_pj_per_bit=5.68, phy_area_mm2=0.5,
    source=LPDDR5, cited="JEDEC JESD209-5B timings; Micron LPDDR5X datasheet (Y52P, Table 18) currents, "
    "self-refresh and two VDD1 currents stand-ins (targets/hardware/dram.py)")


@dataclass(frozen=True)
class Background:
    """Time (ns) and energy (pJ) of one DRAM's background, by state."""

    time_ns: dict[str, float]
    energy_pj: dict[str, float]
    self_refresh_exits: int

    @property
    def total_pj(self) -> float:
        return sum(self.energy_pj.values())


def merge(intervals: list[tuple[float, float]], moved: list[float] | None = None
          ) -> list[tuple[float, float, float]]:
    """Sorted, overlapping or touching intervals joined, each with the bytes moved in it (`moved`, one number per
    interval; without it, 0)."""
    out: list[list[float]] = []
    nbytes = moved if moved is not None else [0.0] * len(intervals)
    for (a, b), n in sorted(zip(intervals, nbytes)):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
            out[-1][2] += n
        else:
            out.append([a, b, n])
    return [(a, b, n) for a, b, n in out]


def transfers(busy: list[tuple[float, float]], span_ns: float, moved: list[float] | None = None
              ) -> list[tuple[float, float, float]]:
    """The transfers `background` charges: `busy` merged (`merge`) and cut to [0, span_ns], each with its bytes
    (`moved`) in proportion to the part of it kept."""
    spans = []
    for a, b, n in merge(busy, moved):
        if b <= 0 or a >= span_ns:
            continue
        lo, hi = max(0.0, a), min(span_ns, b)
        spans.append((lo, hi, n * (hi - lo) / (b - a) if b > a else n))
    return spans


def background(busy: list[tuple[float, float]], span_ns: float, p: DramPower, asleep_before: bool = True,
               moved: list[float] | None = None) -> Background:
    """Background of a DRAM over [0, span_ns] with transfers in flight during `busy` (ns), moving `moved` bytes
    each: active standby while bursts move data, power-down between them (`DramPower.active_ns`; without
    `moved`, active standby all along), self-refresh in idle gaps longer than `self_refresh_after_ns` (and
    leaving it costs an exit), power-down in shorter ones; refresh outside self-refresh. The DRAM starts in
    self-refresh when `asleep_before`."""
    spans = transfers(busy, span_ns, moved)
    time = {"active": 0.0, "power_down": 0.0, "self_refresh": 0.0}
    exits = 0
    cursor = 0.0
    in_sr = asleep_before
    for a, b, n in spans + [(span_ns, span_ns, 0.0)]:
        gap = a - cursor
        if gap > 0:
            if gap > p.self_refresh_after_ns or (in_sr and cursor == 0.0):
                time["self_refresh"] += gap
                in_sr = True
            else:
                time["power_down"] += gap
        if b > a:
            exits += in_sr
            in_sr = False
            on = (b - a) if moved is None else p.active_ns(b - a, n)
            time["active"] += on
            time["power_down"] += (b - a) - on
        cursor = max(cursor, b)
    energy = {"active": time["active"] * p.active_mw,
              "power_down": time["power_down"] * p.power_down_mw,
              "self_refresh": time["self_refresh"] * p.self_refresh_mw,
              "refresh": (time["active"] + time["power_down"]) * p.refresh_mw,
              "self_refresh_exit": exits * p.self_refresh_exit_pj}
    return Background(time, energy, exits)
