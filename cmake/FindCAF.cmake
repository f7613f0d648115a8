# FindCAF.cmake -- finds CAF 0.17.x, whose Debian package (libcaf-dev) ships no
# CMake package config. Creates the IMPORTED targets that CAF >= 0.18 exports:
#   CAF::core, CAF::io (needs core), CAF::openssl (needs io, core, OpenSSL).
# Sets CAF_FOUND, CAF_VERSION, CAF_INCLUDE_DIR, CAF_<comp>_LIBRARY.
# Usage: find_package(CAF 0.17 REQUIRED COMPONENTS core io openssl)
# Without COMPONENTS, looks for core only. Dependencies are added implicitly.
set(_caf_comps ${CAF_FIND_COMPONENTS})
if(NOT _caf_comps)
  set(_caf_comps core)
endif()
if(openssl IN_LIST _caf_comps)
  list(APPEND _caf_comps io)
endif()
list(APPEND _caf_comps core)
list(REMOVE_DUPLICATES _caf_comps)

find_path(CAF_INCLUDE_DIR NAMES caf/all.hpp)
if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  # caf/config.hpp: #define CAF_VERSION 1706  (MMmmpp)
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_ver_line
       REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1" _caf_ver
         "${_caf_ver_line}")
  math(EXPR _caf_major "${_caf_ver} / 10000")
  math(EXPR _caf_minor "(${_caf_ver} / 100) % 100")
  math(EXPR _caf_patch "${_caf_ver} % 100")
  set(CAF_VERSION "${_caf_major}.${_caf_minor}.${_caf_patch}")
endif()

set(_caf_required_vars CAF_INCLUDE_DIR)
foreach(comp IN LISTS _caf_comps)
  find_library(CAF_${comp}_LIBRARY NAMES caf_${comp})
  if(CAF_${comp}_LIBRARY)
    set(CAF_${comp}_FOUND TRUE)
  endif()
  list(APPEND _caf_required_vars CAF_${comp}_LIBRARY)
endforeach()
if(CAF_openssl_FOUND)
  find_package(OpenSSL QUIET)   # caf/openssl/*.hpp include <openssl/ssl.h> (libssl-dev)
  if(NOT OpenSSL_FOUND)
    set(CAF_openssl_FOUND FALSE)
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS ${_caf_required_vars}
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)

if(CAF_FOUND)
  find_package(Threads REQUIRED)
  set(_caf_deps_core Threads::Threads)
  set(_caf_deps_io CAF::core)
  set(_caf_deps_openssl "CAF::io;OpenSSL::SSL")
  foreach(comp IN ITEMS core io openssl)   # dependency order
    if(comp IN_LIST _caf_comps AND CAF_${comp}_FOUND AND NOT TARGET CAF::${comp})
      add_library(CAF::${comp} UNKNOWN IMPORTED)
      set_target_properties(CAF::${comp} PROPERTIES
        IMPORTED_LOCATION "${CAF_${comp}_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
        INTERFACE_LINK_LIBRARIES "${_caf_deps_${comp}}")
    endif()
  endforeach()
endif()
mark_as_advanced(CAF_INCLUDE_DIR CAF_core_LIBRARY CAF_io_LIBRARY
                 CAF_openssl_LIBRARY)
