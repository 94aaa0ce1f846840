// Replays a command trace through DRAMPower's LPDDR4 model and prints its energies as JSON.
// Built against tukl-msd/DRAMPower (commit aeaf364, the last one on DRAMUtils v1.0) and tukl-msd/DRAMUtils v1.0 by
// `python benchmarks/calibration.py --run-drampower BUILD_DIR` (see docs/calibration.md).
// Usage: drampower_trace MEMSPEC.json TRACE.txt   (TRACE: one "cycle COMMAND bank" per line)
#include <DRAMPower/command/Command.h>
#include <DRAMPower/standards/lpddr4/LPDDR4.h>
#include <DRAMPower/memspec/MemSpecLPDDR4.h>
#include <DRAMUtils/memspec/standards/MemSpecLPDDR4.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

using namespace DRAMPower;

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: drampower_trace MEMSPEC.json TRACE.txt\n";
        return 2;
    }
    auto data = DRAMUtils::parse_memspec_from_file(std::filesystem::path(argv[1]));
    if (!data) {
        std::cerr << "cannot read memspec " << argv[1] << "\n";
        return 2;
    }
    MemSpecLPDDR4 spec = MemSpecLPDDR4::from_memspec(*data);
    LPDDR4 ddr(spec);
    const std::map<std::string, CmdType> names = {
        {"ACT", CmdType::ACT}, {"PRE", CmdType::PRE}, {"PREA", CmdType::PREA}, {"RD", CmdType::RD},
        {"WR", CmdType::WR}, {"REFA", CmdType::REFA}, {"PDEP", CmdType::PDEP}, {"PDXP", CmdType::PDXP},
        {"SREFEN", CmdType::SREFEN}, {"SREFEX", CmdType::SREFEX}, {"END", CmdType::END_OF_SIMULATION}};
    std::ifstream in(argv[2]);
    uint64_t cycle, bank, last = 0;
    std::string cmd;
    std::map<std::string, uint64_t> counts;
    while (in >> cycle >> cmd >> bank) {
        auto it = names.find(cmd);
        if (it == names.end()) {
            std::cerr << "unknown command " << cmd << "\n";
            return 2;
        }
        counts[cmd]++;
        last = cycle;
        if (it->second == CmdType::END_OF_SIMULATION) break;
        ddr.doCoreCommand(Command(cycle, it->second, {bank, 0, 0}));
    }
    auto e = ddr.calcCoreEnergy(last);
    energy_info_t b;
    for (const auto& bank_e : e.bank_energy) b += bank_e;
    std::printf("{\"cycles\": %llu, \"tck_s\": %.17g, \"pJ\": {\"act\": %.17g, \"pre\": %.17g, \"rd\": %.17g, "
                "\"wr\": %.17g, \"bg_act\": %.17g, \"bg_act_shared\": %.17g, \"bg_pre\": %.17g, \"ref_ab\": %.17g, "
                "\"pdn_act\": %.17g, \"pdn_pre\": %.17g, \"sref\": %.17g, \"total\": %.17g}, \"commands\": {",
                (unsigned long long)last, spec.memTimingSpec.tCK, b.E_act * 1e12, b.E_pre * 1e12, b.E_RD * 1e12,
                b.E_WR * 1e12, b.E_bg_act * 1e12, e.E_bg_act_shared * 1e12, b.E_bg_pre * 1e12, b.E_ref_AB * 1e12,
                e.E_PDNA * 1e12, e.E_PDNP * 1e12, e.E_sref * 1e12, e.total() * 1e12);
    bool first = true;
    for (auto& [k, v] : counts) {
        std::printf("%s\"%s\": %llu", first ? "" : ", ", k.c_str(), (unsigned long long)v);
        first = false;
    }
    std::printf("}}\n");
    return 0;
}
