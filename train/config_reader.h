#pragma once
// Typed reading of a YAML tree that knows the key path of every value, so each error names the
// file and line (or the command-line override) it came from, and a section can report the keys no
// reader asked for. Internal to the config parser (train/config_schema.cpp).
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sparta::train::config_detail {

// Where the tree's values came from: the file, and the overrides applied to it.
class Origin {
 public:
  explicit Origin(std::string source) : source_(std::move(source)) {}
  const std::string& source() const { return source_; }
  void add_override(std::string key_path, std::string text);
  // Throws "[config] <where>: <text>", where `where` is the override that set `path` (or created the
  // section holding it), else the file and the line of `node` when it has one.
  [[noreturn]] void fail(const std::string& path, const YAML::Node& node, const std::string& text) const;

 private:
  std::string source_;
  std::vector<std::pair<std::string, std::string>> overrides_;  // (key path, "a.b=value")
};

// The Levenshtein distance (case-insensitive) and the nearest of `candidates` to `word` when it is
// close enough to be a likely typo, else "".
size_t edit_distance(const std::string& a, const std::string& b);
std::string nearest_name(const std::string& word, const std::vector<std::string>& candidates);

// One map of the tree. Readers leave `out` unchanged when the key is absent or null, so the
// member initialisers stay the defaults; each reader records its key as known.
class Section {
 public:
  // `node` must be a map, null or undefined (a missing section); anything else is an error.
  Section(const YAML::Node& node, std::string path, const Origin& origin);

  void read(const char* key, int64_t& out);
  void read(const char* key, uint64_t& out);
  void read(const char* key, double& out);
  void read(const char* key, bool& out);
  void read(const char* key, std::string& out);
  // A sequence of scalars; a lone scalar is read as a one-element list.
  void read(const char* key, std::vector<std::string>& out);
  void read(const char* key, std::vector<double>& out);
  template <typename E>
  void read_enum(const char* key, E& out, const std::vector<std::pair<const char*, E>>& names);
  Section section(const char* key);

  bool has(const char* key) const;  // present and not null
  YAML::Node value(const char* key) const;  // the value node; an undefined node when absent
  std::string path_of(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const Origin& origin() const { return *origin_; }

  // "<file>:<line>: <section>.<key>: <msg...>", located at the key's value, or the section when absent.
  template <typename... Args>
  [[noreturn]] void fail(const char* key, const Args&... msg) const {
    origin_->fail(path_of(key), locate(key), path_of(key) + ": " + detail::concat(msg...));
  }
  template <typename... Args>
  void check(bool ok, const char* key, const Args&... msg) const {
    if (!ok) fail(key, msg...);
  }
  // Throws on the first key that no reader asked for, naming the nearest known key.
  void finish() const;

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node, value;
  };
  const Entry* find(const char* key) const;
  const Entry* find_value(const char* key);  // marks `key` known; null when absent or null-valued
  YAML::Node locate(const char* key) const;
  [[noreturn]] void expected(const char* key, const YAML::Node& value, const char* what) const;

  YAML::Node node_;
  std::string path_;
  const Origin* origin_;
  std::vector<Entry> entries_;
  std::vector<std::string> known_;
};

template <typename E>
void Section::read_enum(const char* key, E& out, const std::vector<std::pair<const char*, E>>& names) {
  std::string text;
  read(key, text);
  if (!has(key)) return;
  for (const auto& [name, v] : names) {
    if (text == name) {
      out = v;
      return;
    }
  }
  std::string valid;
  for (size_t i = 0; i < names.size(); ++i) {
    valid += i == 0 ? "" : (i + 1 == names.size() ? " or " : ", ");
    valid += names[i].first;
  }
  fail(key, "unknown value '", text, "' (expected ", valid, ")");
}

}  // namespace sparta::train::config_detail
