# ferry_proto_library(NAME PROTOS <files> [IMPORT_DIRS <dirs>] [DEPS <targets>] [GRPC])
#
# Generates C++ (and, with GRPC, gRPC service + mock) code for the given .proto files into the
# build tree and wraps it in a static library NAME. Paths of PROTOS are relative to the first
# IMPORT_DIR, which is also how the generated headers are included
# ("ferry/v1/types.pb.h").
function(ferry_proto_library name)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;IMPORT_DIRS;DEPS" ${ARGN})
  if(NOT ARG_IMPORT_DIRS)
    message(FATAL_ERROR "ferry_proto_library(${name}): IMPORT_DIRS is required")
  endif()
  list(GET ARG_IMPORT_DIRS 0 root)
  set(out ${CMAKE_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${out})
  set(include_flags)
  foreach(dir ${ARG_IMPORT_DIRS})
    list(APPEND include_flags -I${dir})
  endforeach()
  list(APPEND include_flags -I/usr/include)

  set(srcs)
  set(hdrs)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    set(gen ${out}/${base}.pb.cc ${out}/${base}.pb.h)
    set(plugin_args)
    if(ARG_GRPC)
      list(APPEND gen ${out}/${base}.grpc.pb.cc ${out}/${base}.grpc.pb.h
           ${out}/${base}_mock.grpc.pb.h)
      set(plugin_args
          --grpc_out=generate_mock_code=true:${out}
          --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${gen}
      COMMAND protobuf::protoc --cpp_out=${out} ${plugin_args} ${include_flags} ${root}/${proto}
      DEPENDS ${root}/${proto} protobuf::protoc
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND srcs ${out}/${base}.pb.cc)
    if(ARG_GRPC)
      list(APPEND srcs ${out}/${base}.grpc.pb.cc)
    endif()
  endforeach()

  add_library(${name} STATIC ${srcs})
  # Generated code is not ours to keep warning-free.
  target_compile_options(${name} PRIVATE -w)
  target_include_directories(${name} PUBLIC ${out})
  target_link_libraries(${name} PUBLIC protobuf::libprotobuf gRPC::grpc++ ${ARG_DEPS})
endfunction()
