// Every pattern's layout against its documented definition, evaluated pair by pair (written
// here independently of the mask terms), plus parsing and the errors for bad parameters.
#include <cmath>
#include <fstream>
#include <functional>

#include "nn/attention/patterns.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

void check_definition(const std::string& what, const PatternPtr& p, int64_t n, int64_t block, int heads,
                      const std::function<bool(int head, int64_t q, int64_t k)>& def) {
  auto L = p->layout(n, block, heads);
  for (int h = 0; h < heads; ++h) {
    int64_t wrong = 0, fq = -1, fk = -1;
    for (int64_t q = 0; q < n; ++q) {
      for (int64_t k = 0; k < n; ++k) {
        if (L->allows(L->layout_of(h), q, k) != def(h, q, k) && wrong++ == 0) {
          fq = q;
          fk = k;
        }
      }
    }
    BOOST_CHECK_MESSAGE(wrong == 0, what << " (" << p->describe() << ") head " << h << ": " << wrong
                                         << " pairs differ from the definition, first (" << fq << ", " << fk << ")");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(patterns_match_their_definitions) {
  for (int64_t n : {50, 64, 97}) {
    for (int64_t b : {8, 16}) {
      check_definition("dense", dense_causal(), n, b, 1, [](int, int64_t q, int64_t k) { return k <= q; });
      check_definition("local causal", local(11), n, b, 1, [](int, int64_t q, int64_t k) { return q - 11 < k && k <= q; });
      check_definition("local bidirectional", local(11, false), n, b, 1,
                       [](int, int64_t q, int64_t k) { return std::abs(q - k) < 11; });
      check_definition("strided", strided(7), n, b, 1, [](int, int64_t q, int64_t k) {
        return k <= q && (q - k <= 7 || (q - k) % 7 == 0);
      });
      check_definition("fixed", fixed(10, 3), n, b, 1, [](int, int64_t q, int64_t k) {
        return k <= q && (k / 10 == q / 10 || k % 10 >= 7);
      });
      std::vector<int64_t> g = {0, 17, n - 1};
      check_definition("longformer", longformer(6, 2, g, false), n, b, 1, [&](int, int64_t q, int64_t k) {
        bool global = std::count(g.begin(), g.end(), q) || std::count(g.begin(), g.end(), k);
        return global || (std::abs(q - k) <= 6 && (q - k) % 2 == 0);
      });
      check_definition("longformer causal", longformer(4, 3, {}, true), n, b, 1, [](int, int64_t q, int64_t k) {
        return q - k >= 0 && q - k <= 9 && (q - k) % 3 == 0;
      });
      check_definition("topk window", top_k(4, 9), n, b, 1, [](int, int64_t q, int64_t k) { return q - 9 < k && k <= q; });
      check_definition("union", union_of({local(5), strided(9)}), n, b, 1, [](int, int64_t q, int64_t k) {
        return k <= q && (q - k < 5 || q - k <= 9 || (q - k) % 9 == 0);
      });
      check_definition("per head", per_head({local(5), fixed(12, 2)}), n, b, 3, [](int h, int64_t q, int64_t k) {
        if (k > q) return false;
        return h % 2 == 0 ? q - k < 5 : (k / 12 == q / 12 || k % 12 >= 10);
      });
      check_definition("explicit", explicit_blocks({{0, 0}, {2, 0}, {3, 1}, {3, 3}}), n, b, 1,
                       [&](int, int64_t q, int64_t k) {
                         int64_t i = q / b, j = k / b;
                         bool listed = (i == 0 && j == 0) || (i == 2 && j == 0) || (i == 3 && (j == 1 || j == 3));
                         return listed && k <= q;
                       });
    }
  }
}

BOOST_AUTO_TEST_CASE(bigbird_blocks) {
  const int64_t n = 128, b = 8, nb = 16;
  auto p = bigbird(1, 1, 2, 99);
  auto L = p->layout(n, b, 4);
  BOOST_CHECK_EQUAL(L->n_layouts, 4);  // random blocks differ per head
  for (int h = 0; h < 4; ++h) {
    for (int64_t i = 0; i < nb; ++i) {
      int64_t listed = 0;
      for (int64_t j = 0; j < nb; ++j) {
        bool a = L->allows(h, i * b, j * b);
        listed += a;
        // Global first block and the window are always there.
        if (i == 0 || j == 0 || std::abs(i - j) <= 1) BOOST_CHECK(a);
      }
      // Global row sees everything; others: global + window (up to 3) + up to 2 random.
      if (i == 0) BOOST_CHECK_EQUAL(listed, nb);
      else BOOST_CHECK_LE(listed, 1 + 3 + 2);
    }
  }
  // The same seed draws the same blocks; another seed (very likely) others.
  auto again = bigbird(1, 1, 2, 99)->layout(n, b, 4);
  BOOST_CHECK(again->col_idx == L->col_idx);
  auto other = bigbird(1, 1, 2, 100)->layout(n, b, 4);
  BOOST_CHECK(other->col_idx != L->col_idx);
}

BOOST_AUTO_TEST_CASE(parsing_and_bitmaps) {
  BOOST_CHECK_EQUAL(parse_pattern("fixed:16:2")->describe(), "fixed(l=16, c=2, causal)");
  BOOST_CHECK_EQUAL(parse_pattern("local:8+strided:4")->describe(), "local(w=8, causal) + strided(l=4, causal)");
  BOOST_CHECK_EQUAL(parse_pattern("local:32:bidirectional")->causal(), false);
  BOOST_CHECK_EQUAL(parse_pattern("topk:32:512")->top_k(), 32);
  std::string path = "test_patterns_bitmap.txt";
  {
    std::ofstream f(path);
    f << "# a 4x4 block bitmap\n#...\n##..\n.#1.\n1001\n";
  }
  auto p = parse_pattern("bitmap:" + path);
  auto L = p->layout(32, 8);
  BOOST_CHECK(L->allows(0, 9, 1));
  BOOST_CHECK(!L->allows(0, 17, 1));
  BOOST_CHECK(L->allows(0, 20, 17));
  {
    std::ofstream f(path);
    f << "1..\n11.\n";
  }
  check_error([&] { bitmap_file(path); }, {"[bitmap]", path.c_str(), "2 x 3"});
  {
    std::ofstream f(path);
    f << "1.\n1x\n";
  }
  check_error([&] { bitmap_file(path); }, {"[bitmap]", ":2", "'x'"});
  {
    std::ofstream f(path);
    f << "1..\n11.\n111\n";
  }
  check_error([&] { bitmap_file(path)->layout(64, 8); }, {"[explicit]", "8 x 8"});
  check_error([&] { bitmap_file(path)->validate(16, 8); }, {"[explicit]", "2 x 2"});
  std::remove(path.c_str());
}

BOOST_AUTO_TEST_CASE(bad_parameters_name_the_pattern_and_value) {
  check_error([] { local(0); }, {"[local]", "window", "0"});
  check_error([] { local(-3); }, {"[local]", "-3"});
  check_error([] { local(100)->validate(64, 8); }, {"[local]", "100", "64"});
  BOOST_CHECK(local(100)->layout(64, 8)->allows(0, 63, 0));  // a shorter sequence: the window saturates
  check_error([] { strided(0); }, {"[strided]", "stride"});
  check_error([] { strided(65)->validate(64, 8); }, {"[strided]", "65"});
  check_error([] { fixed(8, 9); }, {"[fixed]", "9"});
  check_error([] { fixed(0, 1); }, {"[fixed]", "block length"});
  check_error([] { top_k(0, 8); }, {"[topk]", "k"});
  check_error([] { top_k(16, 8); }, {"[topk]", "16", "8"});
  check_error([] { longformer(8, 1, {70})->validate(64, 8); }, {"[longformer]", "70"});
  check_error([] { fixed(128, 4)->validate(64, 8); }, {"[fixed]", "128", "64"});
  check_error([] { top_k(4, 100)->validate(64, 8); }, {"[topk]", "100"});
  check_error([] { bigbird(9, 1, 1, 0)->validate(64, 8); }, {"[bigbird]", "9"});
  check_error([] { dense_causal()->layout(64, 0); }, {"[dense]", "block"});
  check_error([] { dense_causal()->layout(0, 8); }, {"[dense]", "sequence length"});
  check_error([] { parse_pattern("fixed:16"); }, {"[pattern]", "fixed:BLOCK_LEN:SUMMARY"});
  check_error([] { parse_pattern("local:abc"); }, {"[pattern]", "'abc'"});
  check_error([] { parse_pattern("diagonal:3"); }, {"[pattern]", "unknown pattern 'diagonal:3'"});
  check_error([] { union_of({local(4), local(4, false)}); }, {"[union]", "causality"});
}
