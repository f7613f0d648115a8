#include "troupe/runtime/message_types.hpp"

#include <algorithm>

#include <catch2/catch.hpp>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"

namespace troupe {

namespace {

struct order {
  std::string symbol;
  int32_t qty = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order& x) {
  return f(caf::meta::type_name("order"), x.symbol, x.qty);
}

struct with_order : config {
  with_order() {
    add_message_type<order>("test.order");
  }
};

} // namespace

TEST_CASE("the registry lists troupe's own types and the program's",
          "[runtime][message_types]") {
  config plain;
  with_order extended;
  auto xs = message_types(plain);
  CHECK(std::is_sorted(xs.begin(), xs.end()));
  CHECK(std::count(xs.begin(), xs.end(), "troupe.node_info") == 1);
  auto ys = message_types(extended);
  CHECK(std::count(ys.begin(), ys.end(), "test.order") == 1);
  CHECK(ys.size() > xs.size());
}

TEST_CASE("equal registries have equal fingerprints - others differ",
          "[runtime][message_types]") {
  config a;
  config b;
  with_order c;
  auto fa = registry_fingerprint(a);
  CHECK(fa.size() == 64);
  CHECK(fa.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(fa == registry_fingerprint(b));
  CHECK(fa != registry_fingerprint(c));
}

TEST_CASE("comparing registries names the types one side lacks",
          "[runtime][message_types]") {
  config a;
  with_order c;
  auto local = make_node_info("master", a);
  auto remote = make_node_info("worker", c);
  CHECK_FALSE(compare_registries(local, make_node_info("twin", a)));
  auto err = compare_registries(local, remote);
  REQUIRE(err == errc::registry_mismatch);
  auto what = err.context().get_as<std::string>(0);
  CHECK(what == "message registries differ; node 'master' lacks: test.order");
  auto rev = compare_registries(remote, local);
  CHECK(rev.context().get_as<std::string>(0)
        == "message registries differ; node 'master' lacks: test.order");
}

} // namespace troupe
