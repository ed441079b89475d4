#pragma once
// An error with the HTTP status it maps to; the API answers it as {"error": what()}.
// 400: the request is malformed or invalid (the reason says which field or key); 401: no or wrong
// token; 404: no such job or route; 409: the job's state does not allow it (cancel a finished job).
#include <stdexcept>
#include <string>

namespace sparta::daemon {

class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace sparta::daemon
