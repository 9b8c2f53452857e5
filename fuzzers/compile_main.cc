// compile_main.cc - turns programs between their forms:
//   compile [--to-text] IN OUT   text (.txt) to binary, or with --to-text binary to text.
//   compile --dict                the engines' dictionary (fuzzers/ops.h) on stdout.
// Exit 2 with a message naming the line on a malformed text program (OUT untouched).
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "fuzzers/program.h"

using namespace slabfuzz;

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--dict") {
    fputs(dictionary_text().c_str(), stdout);
    return fflush(stdout) == 0 ? 0 : 2;
  }
  bool to_text_form = argc == 4 && std::string(argv[1]) == "--to-text";
  if (argc != 3 && !to_text_form) {
    fprintf(stderr, "usage: %s [--to-text] IN OUT | --dict\n", argv[0]);
    return 2;
  }
  std::string in_path = argv[argc - 2], out_path = argv[argc - 1];
  std::ifstream in(in_path, std::ios::binary);
  if (!in) {
    fprintf(stderr, "compile: cannot read %s\n", in_path.c_str());
    return 2;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string text, err;
  if (to_text_form) {
    text = to_text(decode(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
  } else {
    auto p = parse_text(bytes, &err);
    if (!p) {
      fprintf(stderr, "compile: %s: %s\n", in_path.c_str(), err.c_str());
      return 2;
    }
    std::vector<uint8_t> b = encode(*p);
    text.assign(b.begin(), b.end());
  }
  // OUT is replaced only by a whole result: a program that does not parse leaves it as
  // it was.
  if (!write_atomically(out_path, text, &err)) {
    fprintf(stderr, "compile: %s\n", err.c_str());
    return 2;
  }
  return 0;
}
