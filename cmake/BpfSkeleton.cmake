# bpf_skeleton(NAME SOURCE): compile SOURCE with clang for the BPF target and
# generate NAME.skel.h with bpftool; adds the target NAME_skel.
find_program(CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND uname -m OUTPUT_VARIABLE XTAP_ARCH OUTPUT_STRIP_TRAILING_WHITESPACE)
if(XTAP_ARCH STREQUAL "x86_64")
  set(XTAP_BPF_ARCH x86)
elseif(XTAP_ARCH STREQUAL "aarch64")
  set(XTAP_BPF_ARCH arm64)
else()
  set(XTAP_BPF_ARCH ${XTAP_ARCH})
endif()

function(bpf_skeleton name source)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  file(MAKE_DIRECTORY ${out_dir})
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  file(GLOB deps ${CMAKE_CURRENT_SOURCE_DIR}/bpf/include/*.h ${CMAKE_CURRENT_SOURCE_DIR}/bpf/lib/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CLANG} -g -O2 -Wall -Wextra -Werror -Wno-unused-parameter -target bpf
            -D__TARGET_ARCH_${XTAP_BPF_ARCH} -mcpu=v3
            -I${CMAKE_CURRENT_SOURCE_DIR}/bpf/include -I${CMAKE_CURRENT_SOURCE_DIR}/bpf/lib
            -I/usr/include/${XTAP_ARCH}-linux-gnu
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${source} ${deps}
    COMMENT "BPF ${source}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h")
  add_custom_target(${name}_skel DEPENDS ${skel})
endfunction()
