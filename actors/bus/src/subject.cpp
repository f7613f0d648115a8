#include "troupe/bus/subject.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "troupe/runtime/errc.hpp"

namespace troupe::bus {

namespace {

// Splits off the first token of `rest`: returns it and leaves `rest` after
// the following dot, or empty if it was the last token.
std::string_view next_token(std::string_view& rest) {
  auto dot = rest.find('.');
  if (dot == std::string_view::npos) {
    auto token = rest;
    rest = std::string_view{};
    return token;
  }
  auto token = rest.substr(0, dot);
  rest.remove_prefix(dot + 1);
  return token;
}

// Shows a subject in an error message: quoted, cut after 64 bytes, control
// characters as `\xNN`.
std::string quoted(std::string_view x) {
  std::string result = "'";
  auto shown = x.substr(0, 64);
  for (auto c : shown) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      result += "\\x";
      result += hex[u >> 4];
      result += hex[u & 0xf];
    } else {
      result += c;
    }
  }
  if (shown.size() < x.size())
    result += "...";
  result += '\'';
  return result;
}

caf::error invalid(bool pattern, std::string_view x, const std::string& why) {
  std::string text = pattern ? "invalid pattern " : "invalid subject ";
  text += quoted(x);
  text += ": ";
  text += why;
  return caf::make_error(errc::invalid_subject, std::move(text));
}

caf::error validate(std::string_view x, bool pattern) {
  if (x.empty())
    return caf::make_error(errc::invalid_subject,
                           pattern ? "invalid pattern: it is empty"
                                   : "invalid subject: it is empty");
  if (x.size() > max_subject_size)
    return invalid(pattern, x,
                   "longer than " + std::to_string(max_subject_size)
                     + " bytes (" + std::to_string(x.size()) + ")");
  // NATS's whitespace: any other byte may be part of a token.
  for (size_t i = 0; i < x.size(); ++i) {
    const char* name = nullptr;
    switch (x[i]) {
      case ' ':
        name = "space";
        break;
      case '\t':
        name = "tab";
        break;
      case '\n':
        name = "line feed";
        break;
      case '\r':
        name = "carriage return";
        break;
      case '\f':
        name = "form feed";
        break;
      default:
        continue;
    }
    return invalid(pattern, x,
                   std::string{name} + " at position " + std::to_string(i + 1)
                     + " (subjects contain no whitespace)");
  }
  auto rest = x;
  size_t index = 0;
  bool more = true;
  while (more) {
    more = rest.find('.') != std::string_view::npos;
    auto token = next_token(rest);
    ++index;
    if (token.empty())
      return invalid(pattern, x,
                     "token " + std::to_string(index)
                       + " is empty (no leading, trailing or double dots)");
    // Only a whole token is a wildcard: `a*` or `>>` is a literal token.
    auto star = token == "*";
    auto gt = token == ">";
    if (!star && !gt)
      continue;
    if (!pattern)
      return invalid(pattern, x,
                     std::string{"wildcard '"} + (star ? '*' : '>')
                       + "' in token " + std::to_string(index)
                       + " (wildcards are for subscriptions, not for "
                         "published subjects)");
    if (gt && more)
      return invalid(pattern, x, "'>' must be the last token");
  }
  return caf::none;
}

} // namespace

caf::error validate_subject(std::string_view subject) {
  return validate(subject, false);
}

caf::error validate_pattern(std::string_view pattern) {
  return validate(pattern, true);
}

bool subject_matches(std::string_view pattern, std::string_view subject) {
  auto p = pattern;
  auto s = subject;
  while (!p.empty()) {
    auto pt = next_token(p);
    if (pt == ">")
      return !s.empty();
    if (s.empty())
      return false;
    auto st = next_token(s);
    if (pt != "*" && pt != st)
      return false;
  }
  return s.empty();
}

// -- subject_index ------------------------------------------------------------

// One level of the trie: the entries whose pattern ends here, those whose
// pattern continues with `>` here, and the branches for the next token.
// Invariant: a level other than the root is non-empty (it has entries or a
// non-empty branch); `erase` frees levels as they become empty.
struct subject_index::level {
  std::vector<uint64_t> here;
  std::vector<uint64_t> rest;
  std::map<std::string, std::unique_ptr<level>, std::less<>> literal;
  std::unique_ptr<level> star;

  bool empty() const noexcept {
    return here.empty() && rest.empty() && literal.empty() && !star;
  }

  void match(std::string_view subject, bool at_end,
             std::vector<uint64_t>& out) const {
    if (at_end) {
      out.insert(out.end(), here.begin(), here.end());
      return;
    }
    // At least one token is left: `>` here matches all of them.
    out.insert(out.end(), rest.begin(), rest.end());
    auto tail = subject;
    auto more = tail.find('.') != std::string_view::npos;
    auto token = next_token(tail);
    if (auto i = literal.find(token); i != literal.end())
      i->second->match(tail, !more, out);
    if (star)
      star->match(tail, !more, out);
  }
};

namespace {

bool erase_one(std::vector<uint64_t>& xs, uint64_t id) {
  auto i = std::find(xs.begin(), xs.end(), id);
  if (i == xs.end())
    return false;
  *i = xs.back();
  xs.pop_back();
  return true;
}

} // namespace

subject_index::subject_index() : root_(std::make_unique<level>()) {
  // nop
}

subject_index::~subject_index() = default;

subject_index::subject_index(subject_index&&) noexcept = default;

subject_index& subject_index::operator=(subject_index&&) noexcept = default;

void subject_index::insert(std::string_view pattern, uint64_t id) {
  auto* cur = root_.get();
  auto rest = pattern;
  while (!rest.empty()) {
    auto token = next_token(rest);
    if (token == ">") {
      cur->rest.push_back(id);
      ++size_;
      return;
    }
    std::unique_ptr<level>* next = nullptr;
    if (token == "*") {
      next = &cur->star;
    } else {
      auto i = cur->literal.find(token);
      if (i == cur->literal.end())
        i = cur->literal.emplace(std::string{token}, nullptr).first;
      next = &i->second;
    }
    if (!*next)
      *next = std::make_unique<level>();
    cur = next->get();
  }
  cur->here.push_back(id);
  ++size_;
}

bool subject_index::erase(std::string_view pattern, uint64_t id) {
  // Walk down, remembering the path, then free empty levels bottom-up.
  struct step {
    level* parent;
    std::string_view token;
  };
  std::vector<step> path;
  auto* cur = root_.get();
  auto rest = pattern;
  bool removed = false;
  while (true) {
    if (rest.empty()) {
      removed = erase_one(cur->here, id);
      break;
    }
    auto token = next_token(rest);
    if (token == ">") {
      removed = erase_one(cur->rest, id);
      break;
    }
    level* next = nullptr;
    if (token == "*") {
      next = cur->star.get();
    } else if (auto i = cur->literal.find(token); i != cur->literal.end()) {
      next = i->second.get();
    }
    if (next == nullptr)
      return false;
    path.push_back(step{cur, token});
    cur = next;
  }
  if (!removed)
    return false;
  --size_;
  for (auto i = path.rbegin(); i != path.rend(); ++i) {
    auto& [parent, token] = *i;
    auto& child
      = token == "*" ? parent->star : parent->literal.find(token)->second;
    if (!child->empty())
      break;
    if (token == "*")
      parent->star.reset();
    else
      parent->literal.erase(parent->literal.find(token));
  }
  return true;
}

void subject_index::match(std::string_view subject,
                          std::vector<uint64_t>& out) const {
  root_->match(subject, subject.empty(), out);
}

} // namespace troupe::bus
