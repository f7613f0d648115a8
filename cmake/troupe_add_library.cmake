# troupe_add_library(<name> SOURCES <src>... [DEPENDS <target>...])
# Adds the static library troupe_<name> with the alias troupe::<name>: public
# headers in <dir>/include, C++17, `DEPENDS` linked PUBLIC, troupe's warnings
# PRIVATE (not exported). Installed and exported as troupe::<name>.
function(troupe_add_library name)
  cmake_parse_arguments(arg "" "" "SOURCES;DEPENDS" ${ARGN})
  set(target troupe_${name})
  add_library(${target} ${arg_SOURCES})
  add_library(troupe::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name}
                                             OUTPUT_NAME ${target})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_link_libraries(${target}
    PUBLIC ${arg_DEPENDS}
    PRIVATE $<BUILD_INTERFACE:troupe::warnings>)
endfunction()
