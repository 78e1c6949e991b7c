#include "lib/manifest/document.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <istream>
#include <memory>
#include <streambuf>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lib/names/names.h"

namespace ferry::manifest {
namespace {

// Thrown from the event handler to stop the parser at the first problem.
struct Stop {
  absl::Status status;
  YAML::Mark mark;
};

// What a walk over a node visits: its nodes, its scalar bytes and its collection levels (0
// for a scalar), aliases expanded.
struct Extent {
  uint64_t nodes = 0;
  uint64_t bytes = 0;
  uint64_t height = 0;
};

// A key as quoted in a message: escaped and cut short.
std::string QuoteKey(const std::string& key) {
  constexpr size_t kShown = 80;
  std::string shown = absl::CHexEscape(key.substr(0, kShown));
  return absl::StrCat("\"", shown, key.size() > kShown ? "...\"" : "\"");
}

// Follows the parse events of one document, keeping only a stack of the open collections
// and the extent of each anchored node, and throws Stop at the first problem: the parser
// never gets deeper than the depth limit, and nothing is expanded.
class Checker final : public YAML::EventHandler {
 public:
  Checker(const DocumentLimits& limits, int first_line)
      : limits_(limits), first_line_(first_line) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnAnchor(const YAML::Mark&, const std::string& name) override { anchor_name_ = name; }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Child(mark, nullptr);
    Leaf(mark, anchor, Extent{1, 0, 0});
  }

  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    if (!names::IsUtf8(value)) {
      // JSON (and so the cluster's API and protobuf) holds only UTF-8: refused here, with
      // its line, rather than failing later wherever the value is serialised.
      throw Stop{absl::InvalidArgumentError(
                     absl::StrCat("the value \"", names::Escape(value.substr(0, 120)),
                                  "\" is not valid UTF-8; Kubernetes manifests must be UTF-8 text: "
                                  "re-save the file as UTF-8 or remove the byte")),
                 mark};
    }
    Child(mark, &value);
    if (anchor != 0) anchored_scalars_[anchor] = value;
    Leaf(mark, anchor, Extent{1, value.size(), 0});
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchored_.find(anchor);
    if (it == anchored_.end()) {
      // yaml-cpp refuses unknown anchors itself: this one is still open around the alias.
      throw Stop{absl::InvalidArgumentError(absl::StrCat(
                     "alias *", OpenAnchorName(anchor),
                     " is used inside the node it names (a cycle no tool can expand); replace "
                     "it with the content it should repeat")),
                 mark};
    }
    auto scalar = anchored_scalars_.find(anchor);
    Child(mark, scalar == anchored_scalars_.end() ? nullptr : &scalar->second);
    const Extent extent = it->second.extent;
    const std::string item = absl::StrCat("alias *", it->second.name, " (repeating ", extent.nodes,
                                          " nodes, ", extent.bytes, " bytes)");
    if (open_.size() + extent.height > limits_.max_depth) {
      throw Stop{
          absl::InvalidArgumentError(limits::OverLimit(
              item, limits::kManifestDepth, limits_.max_depth, open_.size() + extent.height)),
          mark};
    }
    Count(mark, extent, item);
    if (!open_.empty()) Absorb(open_.back().extent, extent);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor, /*is_map=*/false);
  }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor, /*is_map=*/true);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapEnd() override { Close(); }

 private:
  struct Anchored {
    std::string name;
    Extent extent;
  };
  struct Frame {
    bool is_map = false;
    uint64_t children = 0;
    YAML::anchor_t anchor = 0;
    std::string anchor_name;
    Extent extent;
    // Scalar keys seen, with their 0-based line (maps only): a list while short (most
    // mappings have a few keys), and a hash map from kManyKeys on.
    std::vector<std::pair<std::string, int>> keys;
    std::unique_ptr<absl::flat_hash_map<std::string, int>> many_keys;
  };
  static constexpr size_t kManyKeys = 16;

  // The line where `key` was first seen in `frame`, or -1 when it is new (and now recorded).
  static int SeenKey(Frame& frame, const std::string& key, int line) {
    if (frame.many_keys != nullptr) {
      auto [it, inserted] = frame.many_keys->emplace(key, line);
      return inserted ? -1 : it->second;
    }
    for (const auto& [seen, seen_line] : frame.keys) {
      if (seen == key) return seen_line;
    }
    frame.keys.emplace_back(key, line);
    if (frame.keys.size() >= kManyKeys) {
      frame.many_keys = std::make_unique<absl::flat_hash_map<std::string, int>>();
      for (auto& [k, l] : frame.keys) frame.many_keys->emplace(std::move(k), l);
      frame.keys.clear();
    }
    return -1;
  }

  static void Absorb(Extent& parent, const Extent& child) {
    parent.nodes += child.nodes;
    parent.bytes += child.bytes;
    parent.height = std::max(parent.height, child.height + 1);
  }

  // A node starts inside the innermost open collection: as a mapping key (every other
  // child of a mapping), a scalar key (`key`) must be new there.
  void Child(const YAML::Mark& mark, const std::string* key) {
    if (open_.empty()) return;
    Frame& frame = open_.back();
    const bool is_key = frame.is_map && frame.children % 2 == 0;
    ++frame.children;
    if (!is_key || key == nullptr) return;
    const int first = SeenKey(frame, *key, mark.line);
    if (first < 0) return;
    throw Stop{absl::InvalidArgumentError(absl::StrCat(
                   "duplicate key ", QuoteKey(*key), " in a mapping (first at line ",
                   first_line_ + first + 1,
                   "): remove one; kubectl refuses duplicate keys too, and tools disagree on "
                   "which value wins")),
               mark};
  }

  void Count(const YAML::Mark& mark, const Extent& extent, absl::string_view item) {
    // Each total stays at most its limit (checked on every step) and every extent was
    // counted into it once, so these sums cannot overflow.
    nodes_ += extent.nodes;
    bytes_ += extent.bytes;
    if (nodes_ > limits_.max_nodes) {
      throw Stop{absl::InvalidArgumentError(
                     limits::OverLimit(item, limits::kManifestNodes, limits_.max_nodes)),
                 mark};
    }
    if (bytes_ > limits_.max_expanded_bytes) {
      throw Stop{absl::InvalidArgumentError(limits::OverLimit(item, limits::kManifestExpandedBytes,
                                                              limits_.max_expanded_bytes)),
                 mark};
    }
  }

  void Leaf(const YAML::Mark& mark, YAML::anchor_t anchor, const Extent& extent) {
    Count(mark, extent, "");
    if (!open_.empty()) Absorb(open_.back().extent, extent);
    if (anchor != 0) anchored_[anchor] = Anchored{TakeAnchorName(), extent};
  }

  void Open(const YAML::Mark& mark, YAML::anchor_t anchor, bool is_map) {
    Child(mark, nullptr);
    if (open_.size() + 1 > limits_.max_depth) {
      throw Stop{absl::InvalidArgumentError(
                     limits::OverLimit("", limits::kManifestDepth, limits_.max_depth)),
                 mark};
    }
    Count(mark, Extent{1, 0, 1}, "");
    Frame frame;
    frame.is_map = is_map;
    frame.anchor = anchor;
    if (anchor != 0) frame.anchor_name = TakeAnchorName();
    frame.extent = Extent{1, 0, 1};
    open_.push_back(std::move(frame));
  }

  void Close() {
    if (open_.empty()) return;
    Frame frame = std::move(open_.back());
    open_.pop_back();
    if (!open_.empty()) Absorb(open_.back().extent, frame.extent);
    if (frame.anchor != 0) anchored_[frame.anchor] = Anchored{frame.anchor_name, frame.extent};
  }

  std::string TakeAnchorName() {
    std::string name = std::move(anchor_name_);
    anchor_name_.clear();
    return name;
  }

  std::string OpenAnchorName(YAML::anchor_t anchor) const {
    for (const Frame& frame : open_) {
      if (frame.anchor == anchor) return frame.anchor_name;
    }
    return "?";
  }

  const DocumentLimits& limits_;
  const int first_line_;
  std::vector<Frame> open_;
  absl::flat_hash_map<YAML::anchor_t, Anchored> anchored_;
  absl::flat_hash_map<YAML::anchor_t, std::string> anchored_scalars_;
  std::string anchor_name_;
  uint64_t nodes_ = 0;
  uint64_t bytes_ = 0;
};

// Reads a string_view as a stream without copying it.
class ViewStreamBuf final : public std::streambuf {
 public:
  explicit ViewStreamBuf(absl::string_view text) {
    char* begin = const_cast<char*>(text.data());  // only ever read
    setg(begin, begin, begin + text.size());
  }
};

void SetWhere(YAML::Mark* where, const YAML::Mark& mark) {
  if (where != nullptr) *where = mark;
}

// yaml-cpp's tree of `text`; `where` (when given) receives the position of a syntax error.
absl::StatusOr<YAML::Node> LoadTree(absl::string_view text, YAML::Mark* where) {
  try {
    ViewStreamBuf buffer(text);
    std::istream in(&buffer);
    return YAML::Load(in);
  } catch (const YAML::Exception& e) {
    SetWhere(where, e.mark);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid YAML: ", e.msg, "; fix the syntax there"));
  }
}

}  // namespace

absl::StatusOr<YAML::Node> ParseDocument(absl::string_view text, const DocumentLimits& limits,
                                         int first_line, YAML::Mark* where) {
  SetWhere(where, YAML::Mark::null_mark());
  try {
    ViewStreamBuf buffer(text);
    std::istream in(&buffer);
    YAML::Parser parser(in);
    Checker checker(limits, first_line);
    parser.HandleNextDocument(checker);
  } catch (const Stop& stop) {
    SetWhere(where, stop.mark);
    return stop.status;
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own guard (about 500 levels), for limits set above what it parses.
    SetWhere(where, e.mark);
    return absl::InvalidArgumentError(
        limits::OverLimit("", limits::kManifestDepth, limits.max_depth));
  } catch (const YAML::Exception& e) {
    SetWhere(where, e.mark);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid YAML: ", e.msg, "; fix the syntax there"));
  }
  return LoadTree(text, where);
}

absl::StatusOr<YAML::Node> LoadCheckedDocument(absl::string_view text) {
  return LoadTree(text, nullptr);
}

absl::Status ValidateDocumentLimits(const DocumentLimits& limits) {
  if (limits.max_depth < 1 || limits.max_depth > kMaxDocumentDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(limits::kManifestDepth.flag, " must be between 1 and ", kMaxDocumentDepth));
  }
  // Sums of sizes must not overflow: see Checker::Count.
  constexpr uint64_t kMaxSize = uint64_t{1} << 48;
  if (limits.max_nodes < 1 || limits.max_nodes > kMaxSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(limits::kManifestNodes.flag, " must be between 1 and ", kMaxSize));
  }
  if (limits.max_expanded_bytes < 1 || limits.max_expanded_bytes > kMaxSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(limits::kManifestExpandedBytes.flag, " must be between 1 and ", kMaxSize));
  }
  return absl::OkStatus();
}

}  // namespace ferry::manifest
