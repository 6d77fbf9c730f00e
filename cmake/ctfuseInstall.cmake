# Install rules and a package config, so that an installed ctfuse is found with
#   find_package(ctfuse CONFIG REQUIRED)   target_link_libraries(app PRIVATE ctfuse::ctfuse)
include(CMakePackageConfigHelpers)

install(TARGETS ctfuse EXPORT ctfuseTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ctfuse DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(ctfuse_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/ctfuse)
install(EXPORT ctfuseTargets NAMESPACE ctfuse:: DESTINATION ${ctfuse_cmake_dir})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ctfuseConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ctfuseConfig.cmake INSTALL_DESTINATION ${ctfuse_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ctfuseConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ctfuseConfig.cmake ${PROJECT_BINARY_DIR}/ctfuseConfigVersion.cmake
  DESTINATION ${ctfuse_cmake_dir})
