#include "train/config_reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace sparta::train::config_detail {

namespace {

// True when `inner` is `outer` or lies under it ("model.attention[1]" under "model.attention").
bool under(const std::string& inner, const std::string& outer) {
  if (inner.compare(0, outer.size(), outer) != 0) return false;
  return inner.size() == outer.size() || inner[outer.size()] == '.' || inner[outer.size()] == '[';
}

std::string describe(const YAML::Node& v) {
  if (v.IsSequence()) return "a list";
  if (v.IsMap()) return "a map";
  return "'" + v.Scalar() + "'";
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Plain decimal only: yaml-cpp's own conversion reads "010" as octal 8, which no one writing a
// config means.
template <typename Int>
bool parse_int(const std::string& s, Int& out) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e && b != e;
}

bool parse_double(const std::string& s, double& out) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, out, std::chars_format::general);
  return ec == std::errc() && p == e && b != e && std::isfinite(out);
}

bool parse_bool(const std::string& s, bool& out) {
  const std::string l = lower(s);
  if (l == "true" || l == "yes" || l == "on") return out = true, true;
  if (l == "false" || l == "no" || l == "off") return out = false, true;
  return false;
}

}  // namespace

void Origin::add_override(std::string key_path, std::string text) {
  overrides_.emplace_back(std::move(key_path), std::move(text));
}

void Origin::fail(const std::string& path, const YAML::Node& node, const std::string& text) const {
  // The latest override wins, as it does when they are applied.
  for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
    if (under(path, it->first) || (!path.empty() && under(it->first, path))) {
      throw Error("[config] " + source_ + ": override '" + it->second + "': " + text);
    }
  }
  std::string where = source_;
  if (node.IsDefined() && node.Mark().line >= 0) where += ":" + std::to_string(node.Mark().line + 1);
  throw Error("[config] " + where + ": " + text);
}

size_t edit_distance(const std::string& a_in, const std::string& b_in) {
  const std::string a = lower(a_in), b = lower(b_in);
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string nearest_name(const std::string& word, const std::vector<std::string>& candidates) {
  // A third of the word's length (at least 2) separates typos from different names: 'n_layer' ->
  // 'n_layers', 'warmpu' -> 'warmup', but 'lr' is not a misspelt 'eps'.
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  std::string best;
  size_t best_d = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d && d < std::max(word.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

Section::Section(const YAML::Node& node, std::string path, const Origin& origin)
    : node_(node), path_(std::move(path)), origin_(&origin) {
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsMap()) {
    origin.fail(path_, node, (path_.empty() ? std::string("the config") : path_) +
                                 ": expected a section of keys, got " + describe(node));
  }
  for (const auto& kv : node) {
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (!kv.first.IsScalar() || name.empty()) {
      origin.fail(path_, kv.first, (path_.empty() ? std::string("the config") : path_) + ": keys must be names");
    }
    // yaml-cpp keeps both entries of a repeated key and lookups see the first: the later one would
    // be silently ignored.
    for (const Entry& e : entries_) {
      if (e.key == name) origin.fail(path_of(name), kv.first, "duplicate key '" + path_of(name) + "'");
    }
    entries_.push_back({name, kv.first, kv.second});
  }
}

const Section::Entry* Section::find(const char* key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const Section::Entry* Section::find_value(const char* key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
  const Entry* e = find(key);
  return e && !e->value.IsNull() ? e : nullptr;
}

bool Section::has(const char* key) const {
  const Entry* e = find(key);
  return e && !e->value.IsNull();
}

YAML::Node Section::value(const char* key) const {
  const Entry* e = find(key);
  return e ? e->value : YAML::Node(YAML::NodeType::Undefined);
}

YAML::Node Section::locate(const char* key) const {
  const Entry* e = find(key);
  return e ? e->value : node_;
}

void Section::expected(const char* key, const YAML::Node& value, const char* what) const {
  fail(key, "expected ", what, ", got ", describe(value));
}

void Section::read(const char* key, int64_t& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (!e->value.IsScalar() || !parse_int(e->value.Scalar(), out)) expected(key, e->value, "an integer");
}

void Section::read(const char* key, uint64_t& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (!e->value.IsScalar() || !parse_int(e->value.Scalar(), out)) expected(key, e->value, "a non-negative integer");
}

void Section::read(const char* key, double& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (!e->value.IsScalar() || !parse_double(e->value.Scalar(), out)) expected(key, e->value, "a finite number");
}

void Section::read(const char* key, bool& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (!e->value.IsScalar() || !parse_bool(e->value.Scalar(), out)) expected(key, e->value, "true or false");
}

void Section::read(const char* key, std::string& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (!e->value.IsScalar()) expected(key, e->value, "a string");
  out = e->value.Scalar();
}

void Section::read(const char* key, std::vector<std::string>& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (e->value.IsScalar()) {
    out = {e->value.Scalar()};
    return;
  }
  if (!e->value.IsSequence()) expected(key, e->value, "a list of strings");
  std::vector<std::string> items;
  for (size_t i = 0; i < e->value.size(); ++i) {
    const YAML::Node item = e->value[i];
    if (!item.IsScalar()) {
      const std::string p = path_of(key) + "[" + std::to_string(i) + "]";
      origin_->fail(p, item, p + ": expected a string, got " + describe(item));
    }
    items.push_back(item.Scalar());
  }
  out = std::move(items);
}

void Section::read(const char* key, std::vector<double>& out) {
  const Entry* e = find_value(key);
  if (!e) return;
  if (!e->value.IsSequence()) expected(key, e->value, "a list of numbers");
  std::vector<double> items;
  for (size_t i = 0; i < e->value.size(); ++i) {
    const YAML::Node item = e->value[i];
    double v = 0;
    if (!item.IsScalar() || !parse_double(item.Scalar(), v)) {
      const std::string p = path_of(key) + "[" + std::to_string(i) + "]";
      origin_->fail(p, item, p + ": expected a finite number, got " + describe(item));
    }
    items.push_back(v);
  }
  out = std::move(items);
}

Section Section::section(const char* key) {
  const Entry* e = find_value(key);
  return Section(e ? e->value : YAML::Node(YAML::NodeType::Undefined), path_of(key), *origin_);
}

void Section::finish() const {
  for (const Entry& e : entries_) {
    if (std::find(known_.begin(), known_.end(), e.key) != known_.end()) continue;
    std::string text = "unknown key '" + path_of(e.key) + "'";
    const std::string near = nearest_name(e.key, known_);
    if (!near.empty()) {
      text += "; did you mean '" + path_of(near) + "'?";
    } else {
      text += " (valid keys";
      text += path_.empty() ? "" : " of '" + path_ + "'";
      text += ": ";
      for (size_t i = 0; i < known_.size(); ++i) text += (i ? ", " : "") + known_[i];
      text += ")";
    }
    origin_->fail(path_of(e.key), e.key_node, text);
  }
}

}  // namespace sparta::train::config_detail
