#pragma once
// A thin RAII layer over SQLite's C API: a connection, prepared statements with typed binds and
// columns, and a transaction guard that rolls back unless committed. Errors are sparta::Error
// "[sqlite] <db file>: <what was being done>: <SQLite's message>".
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

namespace sparta::daemon {

class Statement;

class Database {
 public:
  explicit Database(const std::string& path);  // creates the file if missing
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const std::string& sql);  // one or more statements, no results
  Statement prepare(const std::string& sql);
  int64_t last_insert_id() const;
  int changes() const;  // rows changed by the last statement
  [[noreturn]] void fail(const std::string& doing) const;
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(Database& db, sqlite3_stmt* stmt, std::string sql);
  ~Statement();
  Statement(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds by 1-based position; returns *this so binds chain.
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, int64_t(v)); }
  Statement& bind(int i, double v);
  Statement& bind(int i, const std::string& v);
  Statement& bind(int i, const char* v) { return bind(i, std::string(v)); }
  Statement& bind_null(int i);
  template <typename T>
  Statement& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }

  bool step();  // true while a row is available; false when done
  void run();   // steps a statement that returns no rows

  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  std::optional<double> opt_real(int col) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
};

// BEGIN IMMEDIATE on construction (the write lock up front, so two writers never both read and then
// collide on the upgrade); ROLLBACK on destruction unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace sparta::daemon
