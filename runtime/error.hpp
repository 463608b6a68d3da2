#pragma once
#include <stdexcept>
#include <string>

namespace kiln {
// Every run-time mistake (bad feed, unknown name, wrong shape, corrupt file) throws this.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
}  // namespace kiln
