// program.cc - decoding, encoding and the text form of programs (see program.h).
#include "fuzzers/program.h"

#include <unistd.h>

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "allocator/backend/names.h"
#include "allocator/kenv/malloc.h"

namespace slabfuzz {

namespace {

struct FlagSet {
  int flags;
  const char* name;
};
const FlagSet kFlagSets[kNumFlagSets] = {
    {M_WAITOK, "M_WAITOK"},
    {M_WAITOK | M_ZERO, "M_WAITOK|M_ZERO"},
    {M_NOWAIT, "M_NOWAIT"},
    {M_NOWAIT | M_ZERO, "M_NOWAIT|M_ZERO"},
    {M_RNOWAIT | M_NULLOK, "M_RNOWAIT|M_NULLOK"},
    {M_SYSWAIT, "M_SYSWAIT"},
    {M_INTNOWAIT, "M_INTNOWAIT"},
    {M_RNOWAIT | M_NULLOK | M_ZERO, "M_RNOWAIT|M_NULLOK|M_ZERO"},
};

// 16 KiB objects: seven to a slab, so that a few operations cross slab boundaries.
const size_t kSizeClasses[kNumSizeClasses] = {16, 64, 100, 192, 256, 640, 16384, 4096};

const char* const kVmZoneNames[kVmZones] = {"PV_ENTRY", "MAP_ENTRY", "SWAPMETA"};

// A field's value taken into its range (what decode does to raw bytes).
uint32_t field_canon(const Field& f, uint32_t v, const Header& h, int nzones) {
  switch (f.range) {
    case Range::kNone: return 0;
    case Range::kZone: return v % static_cast<uint32_t>(nzones);
    case Range::kTestZone: return v % h.nzones;
    case Range::kCpu: return v % h.ncpus;
    case Range::kFlags: return v % kNumFlagSets;
    case Range::kSizeClass: return v % kNumSizeClasses;
    case Range::kPages: return v % static_cast<uint32_t>(h.budget_pages() + 1);
    case Range::kBelow: return v % f.n;
    case Range::kRef: return v;  // canonical_ref: it depends on the operations before
    case Range::kAny: return v;
  }
  return v;
}

// A reference of operation i taken to the nearest operation at or before it that is
// earlier than i and allocates; else the first that allocates before i; else @0 (a
// reference to nothing: at run time the nearest live object).
uint32_t canonical_ref(const std::vector<Op>& ops, size_t i, uint32_t v) {
  if (i == 0) return 0;
  size_t r = std::min<size_t>(v, i - 1);
  while (r > 0 && !op_spec(ops[r].code).allocates) r--;
  for (size_t k = r; k < i; k++)
    if (op_spec(ops[k].code).allocates) return static_cast<uint32_t>(k);
  return 0;
}

void canonicalize_op(Op* op, const Header& h, int nzones) {
  op->code = static_cast<OpCode>(static_cast<uint8_t>(op->code) %
                                 static_cast<uint8_t>(OpCode::kNumOps));
  op->cpu %= h.ncpus;
  const OpSpec& s = op_spec(op->code);
  // Fields an operation does not use are zero, so that equal programs are equal bytes.
  op->a = static_cast<uint8_t>(field_canon(s.a, op->a, h, nzones));
  op->b = static_cast<uint8_t>(field_canon(s.b, op->b, h, nzones));
  op->c = field_canon(s.c, op->c, h, nzones);
}

}  // namespace

const char* op_name(OpCode op) {
  auto i = static_cast<size_t>(op);
  return i < static_cast<size_t>(OpCode::kNumOps) ? kOpSpecs[i].name : "?";
}

int flag_set(int index) { return kFlagSets[index % kNumFlagSets].flags; }
const char* flag_set_name(int index) { return kFlagSets[index % kNumFlagSets].name; }
size_t size_class(int index) { return kSizeClasses[index % kNumSizeClasses]; }

void canonicalize(Program* p) {
  Header& h = p->header;
  // Idempotent: values already in range stay as they are.
  h.backend %= kBackendNames.size();
  h.vm_mode %= 2;
  if (h.ncpus < 1 || h.ncpus > kMaxCpus) h.ncpus = static_cast<uint8_t>(h.ncpus % kMaxCpus + 1);
  h.boot_slabs %= 4;
  h.reserve %= 5;
  h.boot = static_cast<BootMode>(static_cast<uint8_t>(h.boot) % 2);
  h.races %= 8;
  if (h.pct_depth < 1 || h.pct_depth > 8) h.pct_depth = static_cast<uint8_t>(h.pct_depth % 8 + 1);
  if (h.nzones < 1 || h.nzones > kMaxTestZones)
    h.nzones = static_cast<uint8_t>(h.nzones % kMaxTestZones + 1);
  h.zone_sizes &= static_cast<uint16_t>(0x7777u & ((1u << (4 * h.nzones)) - 1));
  h.tick = h.tick_period() == 0
               ? 0
               : static_cast<uint8_t>((h.tick_zone() == kTickFollow ? kTickFollow
                                                                     : h.tick_zone() % p->num_zones())
                                          << 5 |
                                      h.tick_period());
  if (p->ops.size() > kMaxOps) p->ops.resize(kMaxOps);
  for (size_t i = 0; i < p->ops.size(); i++) {
    Op& op = p->ops[i];
    canonicalize_op(&op, h, p->num_zones());
    if (has_ref(op)) op.c = canonical_ref(p->ops, i, op.c);
  }
}

bool has_ref(const Op& op) { return op_spec(op.code).c.range == Range::kRef; }

void renumber_ref(Op* op, std::span<const long> new_of) {
  if (!has_ref(*op) || op->c >= new_of.size()) return;
  long k = static_cast<long>(op->c);
  while (k >= 0 && new_of[static_cast<size_t>(k)] < 0) k--;
  op->c = k >= 0 ? static_cast<uint32_t>(new_of[static_cast<size_t>(k)]) : 0;
}

namespace {

// Rebuilds p->ops as `next` (operations still in the old numbering), renumbering every
// reference through new_of.
void apply_edit(Program* p, std::vector<Op> next, const std::vector<long>& new_of) {
  for (Op& op : next) renumber_ref(&op, new_of);
  p->ops = std::move(next);
  canonicalize(p);
}

}  // namespace

void insert_ops(Program* p, size_t pos, std::span<const Op> ops) {
  pos = std::min(pos, p->ops.size());
  std::vector<long> new_of(p->ops.size());
  for (size_t k = 0; k < new_of.size(); k++)
    new_of[k] = static_cast<long>(k < pos ? k : k + ops.size());
  std::vector<Op> next(p->ops.begin(), p->ops.begin() + static_cast<long>(pos));
  next.insert(next.end(), ops.begin(), ops.end());
  next.insert(next.end(), p->ops.begin() + static_cast<long>(pos), p->ops.end());
  apply_edit(p, std::move(next), new_of);
}

bool is_schedule_op(const Op& op) {
  return op.code == OpCode::kPreempt || op.code == OpCode::kTimer ||
         op.code == OpCode::kTimerAt;
}

void erase_ops(Program* p, size_t pos, size_t n) {
  pos = std::min(pos, p->ops.size());
  n = std::min(n, p->ops.size() - pos);
  std::vector<long> new_of(p->ops.size());
  for (size_t k = 0; k < new_of.size(); k++)
    new_of[k] = k < pos ? static_cast<long>(k) : k < pos + n ? -1 : static_cast<long>(k - n);
  std::vector<Op> next(p->ops.begin(), p->ops.begin() + static_cast<long>(pos));
  next.insert(next.end(), p->ops.begin() + static_cast<long>(pos + n), p->ops.end());
  apply_edit(p, std::move(next), new_of);
}

void move_op(Program* p, size_t from, size_t to) {
  if (from >= p->ops.size()) return;
  to = std::min(to, p->ops.size() - 1);
  std::vector<size_t> order;  // old indices in their new order
  for (size_t k = 0; k < p->ops.size(); k++)
    if (k != from) order.push_back(k);
  order.insert(order.begin() + static_cast<long>(to), from);
  std::vector<long> new_of(p->ops.size());
  std::vector<Op> next;
  for (size_t k = 0; k < order.size(); k++) {
    new_of[order[k]] = static_cast<long>(k);
    next.push_back(p->ops[order[k]]);
  }
  apply_edit(p, std::move(next), new_of);
}

void swap_ops(Program* p, size_t i, size_t j) {
  if (i >= p->ops.size() || j >= p->ops.size()) return;
  std::vector<long> new_of(p->ops.size());
  for (size_t k = 0; k < new_of.size(); k++) new_of[k] = static_cast<long>(k);
  new_of[i] = static_cast<long>(j);
  new_of[j] = static_cast<long>(i);
  std::vector<Op> next = p->ops;
  std::swap(next[i], next[j]);
  apply_edit(p, std::move(next), new_of);
}

Program decode(std::span<const uint8_t> bytes) {
  Program p;
  uint8_t hb[kHeaderSize] = {};
  if (!bytes.empty()) memcpy(hb, bytes.data(), std::min(bytes.size(), kHeaderSize));
  Header& h = p.header;
  h.backend = hb[0];
  h.vm_mode = hb[1];
  h.ncpus = static_cast<uint8_t>(hb[2] % kMaxCpus + 1);
  h.budget = hb[3];
  h.boot_slabs = hb[4];
  h.reserve = hb[5];
  h.boot = static_cast<BootMode>(hb[6] & 1);
  h.races = static_cast<uint8_t>((hb[6] >> 1) & 7);
  h.pct_depth = static_cast<uint8_t>(hb[7] % 8 + 1);
  memcpy(&h.seed, hb + 8, 4);
  h.nzones = static_cast<uint8_t>(hb[12] % kMaxTestZones + 1);
  memcpy(&h.zone_sizes, hb + 13, 2);
  h.tick = hb[15];
  if (bytes.size() > kHeaderSize) {
    size_t n = std::min((bytes.size() - kHeaderSize) / kRecordSize, kMaxOps);
    p.ops.resize(n);
    for (size_t i = 0; i < n; i++) {
      const uint8_t* r = bytes.data() + kHeaderSize + i * kRecordSize;
      Op& op = p.ops[i];
      op.code = static_cast<OpCode>(r[0]);
      op.cpu = r[1];
      op.a = r[2];
      op.b = r[3];
      memcpy(&op.c, r + 4, 4);
    }
  }
  canonicalize(&p);
  return p;
}

std::vector<uint8_t> encode(const Program& p) {
  std::vector<uint8_t> out(kHeaderSize + p.ops.size() * kRecordSize, 0);
  const Header& h = p.header;
  out[0] = h.backend;
  out[1] = h.vm_mode;
  out[2] = static_cast<uint8_t>(h.ncpus - 1);
  out[3] = h.budget;
  out[4] = h.boot_slabs;
  out[5] = h.reserve;
  out[6] = static_cast<uint8_t>(static_cast<uint8_t>(h.boot) | h.races << 1);
  out[7] = static_cast<uint8_t>(h.pct_depth - 1);
  memcpy(&out[8], &h.seed, 4);
  out[12] = static_cast<uint8_t>(h.nzones - 1);
  memcpy(&out[13], &h.zone_sizes, 2);
  out[15] = h.tick;
  for (size_t i = 0; i < p.ops.size(); i++) {
    uint8_t* r = &out[kHeaderSize + i * kRecordSize];
    const Op& op = p.ops[i];
    r[0] = static_cast<uint8_t>(op.code);
    r[1] = op.cpu;
    r[2] = op.a;
    r[3] = op.b;
    memcpy(r + 4, &op.c, 4);
  }
  return out;
}

// A backend index as its name (the harness takes it modulo the number of backends).
std::string backend_text(uint8_t b) {
  return std::string(kBackendNames[b % kBackendNames.size()]);
}

std::string to_text(const Program& p) {
  const Header& h = p.header;
  char buf[512];
  std::string zones;
  for (int i = 0; i < h.nzones; i++) {
    if (i) zones += ",";
    zones += std::to_string(size_class(h.zone_size_class(i)));
  }
  snprintf(buf, sizeof(buf),
           "config backend=%s mode=%s cpus=%u budget=%u boot_slabs=%u reserve=%u boot=%s "
           "seed=0x%08" PRIx32 " depth=%u zones=%s\n",
           backend_text(h.backend).c_str(), h.vm_mode ? "reserved" : "naive", h.ncpus, h.budget, h.boot_slabs,
           h.reserve, h.boot == BootMode::kEarly ? "early" : "running", h.seed, h.pct_depth,
           zones.c_str());
  std::string out = buf;
  if (h.races != 0) {  // before the newline: one config line
    out.pop_back();
    snprintf(buf, sizeof(buf), " races=%u\n", h.races);
    out += buf;
  }
  if (h.tick_period() != 0) {
    out.pop_back();
    snprintf(buf, sizeof(buf), " tick=%d tick_zone=%d\n", h.tick_period(), h.tick_zone());
    out += buf;
  }
  for (const Op& op : p.ops) {
    const OpSpec& s = op_spec(op.code);
    snprintf(buf, sizeof(buf), "cpu%u %s", op.cpu, s.name);
    out += buf;
    const Field* fields[3] = {&s.a, &s.b, &s.c};
    const uint32_t values[3] = {op.a, op.b, op.c};
    for (int i = 0; i < 3; i++) {
      const Field& f = *fields[i];
      if (f.range == Range::kNone) continue;
      if (f.range == Range::kFlags)
        snprintf(buf, sizeof(buf), " %s=%s", f.name, flag_set_name(static_cast<int>(values[i])));
      else if (f.range == Range::kZone && values[i] < kVmZones)
        snprintf(buf, sizeof(buf), " %s=%s", f.name, kVmZoneNames[values[i]]);
      else if (f.range == Range::kZone || f.range == Range::kTestZone)
        snprintf(buf, sizeof(buf), " %s=TEST%" PRIu32, f.name,
                 values[i] - (f.range == Range::kZone ? kVmZones : 0));
      else if (f.range == Range::kSizeClass)
        snprintf(buf, sizeof(buf), " %s=%zu", f.name, size_class(static_cast<int>(values[i])));
      else if (f.range == Range::kRef)
        snprintf(buf, sizeof(buf), " %s=@%" PRIu32, f.name, values[i]);
      else
        snprintf(buf, sizeof(buf), " %s=%" PRIu32, f.name, values[i]);
      out += buf;
    }
    out += "\n";
  }
  return out;
}

namespace {

bool parse_uint(const std::string& s, uint64_t* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long x = strtoull(s.c_str(), &end, 0);
  if (errno != 0 || *end != '\0') return false;
  *v = x;
  return true;
}

int find_size_class(uint64_t bytes) {
  for (int i = 0; i < kNumSizeClasses; i++)
    if (kSizeClasses[i] == bytes) return i;
  return -1;
}

// A zone field's value by name: the VM's zones as the kernel names them (a space as
// '_'), test zones TEST0..; or a number. kZone counts the VM's zones first, kTestZone
// only test zones. -1 if it is neither.
long find_zone(const std::string& v, Range range) {
  std::string u;
  for (char ch : v) u += static_cast<char>(toupper(static_cast<unsigned char>(ch)));
  if (range == Range::kZone)
    for (int z = 0; z < kVmZones; z++)
      if (u == kVmZoneNames[z]) return z;
  uint64_t n = 0;
  if (u.rfind("TEST", 0) == 0 && parse_uint(u.substr(4), &n) && n < kMaxTestZones)
    return static_cast<long>(n) + (range == Range::kZone ? kVmZones : 0);
  return parse_uint(v, &n) && n <= UINT32_MAX ? static_cast<long>(n) : -1;
}

int find_flag_set(const std::string& name) {
  for (int i = 0; i < kNumFlagSets; i++)
    if (name == kFlagSets[i].name) return i;
  return -1;
}

}  // namespace

std::optional<Program> parse_text(const std::string& text, std::string* error) {
  Program p;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  bool have_config = false;
  auto fail = [&](const std::string& msg) {
    *error = "line " + std::to_string(lineno) + ": " + msg;
    return std::nullopt;
  };
  while (std::getline(in, line)) {
    lineno++;
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string verb;
    if (!(words >> verb)) continue;
    std::string opname;
    if (verb.rfind("cpu", 0) == 0 && !(words >> opname)) return fail("missing operation");
    std::vector<std::pair<std::string, std::string>> kv;
    std::string w;
    while (words >> w) {
      size_t eq = w.find('=');
      if (eq == std::string::npos) return fail("expected key=value, got '" + w + "'");
      kv.emplace_back(w.substr(0, eq), w.substr(eq + 1));
    }
    if (verb == "config") {
      if (have_config || !p.ops.empty()) return fail("config must come first, once");
      have_config = true;
      Header& h = p.header;
      for (auto& [k, v] : kv) {
        uint64_t n = 0;
        if (k == "backend" && backend_index(v) >= 0) {
          h.backend = static_cast<uint8_t>(backend_index(v));
        } else if (k == "mode") {
          if (v == "naive") h.vm_mode = 0;
          else if (v == "reserved") h.vm_mode = 1;
          else return fail("mode must be naive or reserved");
        } else if (k == "boot") {
          if (v == "early") h.boot = BootMode::kEarly;
          else if (v == "running") h.boot = BootMode::kRunning;
          else return fail("boot must be early or running");
        } else if (k == "zones") {
          std::istringstream zs(v);
          std::string z;
          int i = 0;
          h.zone_sizes = 0;
          while (std::getline(zs, z, ',')) {
            int sc = parse_uint(z, &n) ? find_size_class(n) : -1;
            if (sc < 0 || i >= kMaxTestZones)
              return fail("zones: sizes from 16,64,100,192,256,640,16384,4096, at most 4");
            h.zone_sizes = static_cast<uint16_t>(h.zone_sizes | (sc << (4 * i)));
            i++;
          }
          if (i == 0) return fail("zones: at least one");
          h.nzones = static_cast<uint8_t>(i);
        } else {
          if (!parse_uint(v, &n)) return fail("bad number '" + v + "' for " + k);
          if (k == "backend" && n < 256) h.backend = static_cast<uint8_t>(n);
          else if (k == "cpus" && n >= 1 && n <= kMaxCpus) h.ncpus = static_cast<uint8_t>(n);
          else if (k == "budget" && n < 256) h.budget = static_cast<uint8_t>(n);
          else if (k == "boot_slabs" && n < 4) h.boot_slabs = static_cast<uint8_t>(n);
          else if (k == "reserve" && n < 5) h.reserve = static_cast<uint8_t>(n);
          else if (k == "seed" && n <= UINT32_MAX) h.seed = static_cast<uint32_t>(n);
          else if (k == "depth" && n >= 1 && n <= 8) h.pct_depth = static_cast<uint8_t>(n);
          else if (k == "races" && n < 8) h.races = static_cast<uint8_t>(n);
          else if (k == "tick" && n < 32) h.tick = static_cast<uint8_t>((h.tick & 0xe0) | n);
          else if (k == "tick_zone" && n < 8)
            h.tick = static_cast<uint8_t>((h.tick & 0x1f) | n << 5);
          else return fail("unknown or out-of-range config key " + k + "=" + v);
        }
      }
      if (h.tick_period() == 0 && h.tick != 0) return fail("tick_zone needs a tick");
      if (h.tick_zone() >= kVmZones + h.nzones && h.tick_zone() != kTickFollow)
        return fail("tick_zone out of range (7: the zone the CPU allocates from)");
      continue;
    }
    if (!have_config) return fail("the config line must come first");
    if (verb.rfind("cpu", 0) != 0) return fail("expected 'config' or 'cpuN operation'");
    uint64_t cpu = 0;
    if (!parse_uint(verb.substr(3), &cpu) || cpu >= p.header.ncpus)
      return fail("bad cpu '" + verb + "' (config cpus=" + std::to_string(p.header.ncpus) + ")");
    int code = -1;
    for (int i = 0; i < static_cast<int>(OpCode::kNumOps); i++)
      if (opname == kOpSpecs[i].name) code = i;
    if (code < 0) return fail("unknown operation '" + opname + "'");
    if (p.ops.size() >= kMaxOps) return fail("more than " + std::to_string(kMaxOps) + " operations");
    Op op;
    op.code = static_cast<OpCode>(code);
    op.cpu = static_cast<uint8_t>(cpu);
    const OpSpec& s = op_spec(op.code);
    const Field* fields[3] = {&s.a, &s.b, &s.c};
    for (auto& [k, v] : kv) {
      int i = 0;
      while (i < 3 && !(fields[i]->range != Range::kNone && k == fields[i]->name)) i++;
      if (i == 3) return fail(std::string("operation ") + opname + " takes no " + k + "=" + v);
      uint64_t n = 0;
      if (fields[i]->range == Range::kFlags) {
        int fs = find_flag_set(v);
        if (fs < 0) return fail("unknown flags '" + v + "'");
        n = static_cast<uint64_t>(fs);
      } else if (fields[i]->range == Range::kZone || fields[i]->range == Range::kTestZone) {
        long z = find_zone(v, fields[i]->range);
        if (z < 0)
          return fail("bad zone '" + v + "' for " + k +
                      (fields[i]->range == Range::kZone ? " (PV_ENTRY, MAP_ENTRY, SWAPMETA, "
                                                          "TEST0.., or a number)"
                                                        : " (TEST0.., or a number)"));
        n = static_cast<uint64_t>(z);
      } else if (fields[i]->range == Range::kRef) {
        if (v.empty() || v[0] != '@' || !parse_uint(v.substr(1), &n))
          return fail("bad reference '" + v + "' for " + k + " (@N: the operation on line N " +
                      "of the operations, from 0, that allocated it)");
        if (n > UINT32_MAX ||
            canonical_ref(p.ops, p.ops.size(), static_cast<uint32_t>(n)) != n)
          return fail(k + "=" + v + " names no earlier operation that allocates" +
                      (n < p.ops.size() ? std::string(" (operation ") + std::to_string(n) + " is " +
                                              op_name(p.ops[n].code) + ")"
                                        : std::string()));
      } else {
        if (!parse_uint(v, &n)) return fail("bad number '" + v + "' for " + k);
        if (fields[i]->range == Range::kSizeClass) {
          int sc = find_size_class(n);
          if (sc < 0) return fail("size must be one of 16,64,100,192,256,640,16384,4096");
          n = static_cast<uint64_t>(sc);
        }
      }
      if (n > (i == 2 ? UINT32_MAX : UINT8_MAX))
        return fail(std::string("operation ") + opname + " takes no " + k + "=" + v);
      if (i == 0) op.a = static_cast<uint8_t>(n);
      if (i == 1) op.b = static_cast<uint8_t>(n);
      if (i == 2) op.c = static_cast<uint32_t>(n);
    }
    Op canon = op;
    canonicalize_op(&canon, p.header, p.num_zones());
    if (!(canon == op)) return fail(std::string("value out of range in ") + opname);
    p.ops.push_back(op);
  }
  if (!have_config) return fail("no config line");
  return p;
}

std::string dictionary_text() {
  std::string out =
      "# slabfuzz.dict - whole 8-byte operation records (opcode, cpu, a, b, c[4]), one\n"
      "# typical record per operation and CPU 0 and 1, for libFuzzer's -dict and AFL++'s -x.\n"
      "# Generated from fuzzers/ops.h (compile --dict); any byte string is still a program.\n";
  for (size_t i = 0; i < std::size(kOpSpecs); i++) {
    const OpSpec& s = kOpSpecs[i];
    for (uint8_t cpu = 0; cpu < 2; cpu++) {
      // A CPU field names the other CPU: an interrupt or timer sent across.
      auto value = [&](const Field& f, uint32_t v) -> uint32_t {
        if (f.range == Range::kNone) return 0;
        return f.range == Range::kCpu ? 1u - cpu : v;
      };
      Op op;
      op.code = static_cast<OpCode>(i);
      op.cpu = cpu;
      op.a = static_cast<uint8_t>(value(s.a, s.dict_a));
      op.b = static_cast<uint8_t>(value(s.b, s.dict_b));
      op.c = value(s.c, s.dict_c);
      Program p;
      p.ops.push_back(op);
      std::vector<uint8_t> bytes = encode(p);
      char buf[64];
      snprintf(buf, sizeof(buf), "%s_cpu%u=\"", s.name, cpu);
      out += buf;
      for (size_t k = kHeaderSize; k < bytes.size(); k++) {
        snprintf(buf, sizeof(buf), "\\x%02x", bytes[k]);
        out += buf;
      }
      out += "\"\n";
    }
  }
  return out;
}

bool load_program(const std::string& path, Program* p, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".txt") == 0) {
    std::string perr;
    auto parsed = parse_text(bytes, &perr);
    if (!parsed) {
      *error = path + ": " + perr;
      return false;
    }
    *p = *parsed;
  } else {
    *p = decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                         bytes.size()));
  }
  return true;
}

bool write_atomically(const std::string& path, const std::string& text, std::string* err) {
  // Beside it (rename() stays in one file system), and one per writer.
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    *err = "cannot write " + path + ": " + strerror(errno);
    return false;
  }
  bool ok = fwrite(text.data(), 1, text.size(), f) == text.size();
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    *err = "cannot write " + path + ": " + strerror(errno);
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace slabfuzz
