# What vgg::vgg needs, found the same way in the build tree and in an installed copy.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xsimd 8 REQUIRED)
find_package(OpenMP REQUIRED)
# Debian's xsimd 8.1 package links a library named xtl that Debian does not ship; xsimd itself
# needs nothing from it. Only where xsimd links xtl and no real xtl is found does an empty
# stand-in satisfy the link.
get_target_property(_vgg_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
if("xtl" IN_LIST _vgg_xsimd_links AND NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
