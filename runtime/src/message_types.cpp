#include "troupe/runtime/message_types.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <mutex>
#include <set>

#include <caf/actor_system_config.hpp>
#include <openssl/evp.h>

#include "troupe/runtime/errc.hpp"

namespace troupe {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<node_info>("troupe.node_info");
}

namespace {

struct registrars {
  std::mutex mtx;
  std::vector<registrar> fns;
};

registrars& all_registrars() {
  static registrars instance;
  return instance;
}

} // namespace

bool add_registrar(registrar f) {
  auto& rs = all_registrars();
  std::lock_guard<std::mutex> guard{rs.mtx};
  if (std::find(rs.fns.begin(), rs.fns.end(), f) == rs.fns.end())
    rs.fns.push_back(f);
  return true;
}

namespace detail {

void run_registrars(caf::actor_system_config& cfg) {
  std::vector<registrar> fns;
  {
    auto& rs = all_registrars();
    std::lock_guard<std::mutex> guard{rs.mtx};
    fns = rs.fns;
  }
  for (auto f : fns)
    f(cfg);
}

} // namespace detail

namespace {

// Returns whether `name` is one that CAF derives from a registered type `T`
// (`std::vector<T>`, `stream<T>`) while `T` itself is in `names`.
template <class Set>
bool is_derived(const std::string& name, const Set& names) {
  for (std::string prefix : {"std::vector<", "stream<"}) {
    if (name.size() > prefix.size() + 1 && name.back() == '>'
        && name.compare(0, prefix.size(), prefix) == 0) {
      auto inner = name.substr(prefix.size(), name.size() - prefix.size() - 1);
      if (names.count(inner) > 0)
        return true;
    }
  }
  return false;
}

} // namespace

std::vector<std::string> message_types(const caf::actor_system_config& cfg) {
  std::set<std::string> names;
  for (auto& kvp : cfg.value_factories_by_name)
    names.insert(kvp.first);
  std::vector<std::string> result;
  for (auto& name : names)
    if (!is_derived(name, names))
      result.push_back(name);
  return result;
}

std::string registry_fingerprint(const caf::actor_system_config& cfg) {
  std::string text;
  for (auto& name : message_types(cfg)) {
    text += name;
    text += '\n';
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  hex.reserve(len * 2);
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", digest[i]);
    hex += buf;
  }
  return hex;
}

node_info make_node_info(std::string name,
                         const caf::actor_system_config& cfg) {
  return node_info{std::move(name), registry_fingerprint(cfg),
                   message_types(cfg)};
}

namespace {

// Returns the names in `xs` that are not in `ys`, comma-separated.
std::string missing(const std::vector<std::string>& xs,
                    const std::vector<std::string>& ys) {
  std::vector<std::string> diff;
  std::set_difference(xs.begin(), xs.end(), ys.begin(), ys.end(),
                      std::back_inserter(diff));
  std::string result;
  for (auto& x : diff) {
    if (!result.empty())
      result += ", ";
    result += x;
  }
  return result;
}

} // namespace

caf::error compare_registries(const node_info& local, const node_info& remote) {
  if (local.fingerprint == remote.fingerprint)
    return caf::none;
  auto lt = local.types;
  auto rt = remote.types;
  std::sort(lt.begin(), lt.end());
  std::sort(rt.begin(), rt.end());
  std::string what = "message registries differ";
  if (auto only_local = missing(lt, rt); !only_local.empty())
    what += "; node '" + remote.name + "' lacks: " + only_local;
  if (auto only_remote = missing(rt, lt); !only_remote.empty())
    what += "; node '" + local.name + "' lacks: " + only_remote;
  return caf::make_error(errc::registry_mismatch, std::move(what));
}

} // namespace troupe
