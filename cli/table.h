// Aligned text tables in the style of kubectl and fluxctl: columns padded to their widest
// cell, separated by two spaces, trailing spaces trimmed.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace ferry::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  // Writes the table; without the header line when `headers` is false.
  void Print(std::ostream& out, bool headers = true) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Display width of UTF-8 text (code points; good enough for names and images).
size_t DisplayWidth(const std::string& text);

}  // namespace ferry::cli
