#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/seeds/<target>/. Needs nix-store (for NARs and keys).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf narinfo nar_validator store_path nixbase32 nar_hash byte_range keys
mkdir -p narinfo nar_validator store_path nixbase32 nar_hash byte_range keys

cat > narinfo/hello <<'NARINFO'
StorePath: /nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1
URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar
Compression: none
FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
FileSize: 226560
NarHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
NarSize: 226560
References: 7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1 yaz7pyf0ah88g2v505l38n0f3wg2vzdj-glibc-2.37-8
Deriver: d3ydk7y4bnfp3ibpqyv6b2g8cp4vp5fy-hello-2.12.1.drv
System: x86_64-linux
Sig: cache.nixos.org-1:3xGTd6kbg2VyW7+eJzKUnK2JkmUl/1ZLfcZtPUMSPPU3GYLcqWYhKD8uWuB+3qJtO2ODLNUkAvTu9dOv2RUcBQ==
CA: fixed:r:sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
NARINFO

# NAR seeds: first byte 0 = no split points; first byte 2 + two u16 offsets = three chunks.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/dir/sub"
printf 'hello\n' > "$tree/dir/a"
printf '#!/bin/sh\necho hi\n' > "$tree/dir/bin"
chmod +x "$tree/dir/bin"
ln -s a "$tree/dir/link"
printf '12345678' > "$tree/dir/sub/eight"
: > "$tree/dir/sub/empty"
printf 'single file\n' > "$tree/file"
{ printf '\x00'; nix-store --dump "$tree/dir"; } > nar_validator/dir
{ printf '\x00'; nix-store --dump "$tree/file"; } > nar_validator/file
{ printf '\x02\x05\x00\x2c\x01'; nix-store --dump "$tree/dir"; } > nar_validator/dir_split
{ printf '\x00'; nix-store --dump "$tree/dir/link"; } > nar_validator/symlink

printf '7h7qgvs4kgzsn8a6rb273saxyqh4jxlz' > store_path/hash
printf '7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1' > store_path/basename
printf '/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a+b_c?d=e.f' > store_path/absolute

printf '7h7qgvs4kgzsn8a6rb273saxyqh4jxlz' > nixbase32/20
printf '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73' > nixbase32/32

printf 'sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73' > nar_hash/base32
printf 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' > nar_hash/hex
printf 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' > nar_hash/sri

# byte_range: 8 bytes little-endian body size (1000), then the header.
size='\xe8\x03\x00\x00\x00\x00\x00\x00'
printf "${size}bytes=0-99" > byte_range/first
printf "${size}bytes=900-" > byte_range/open
printf "${size}bytes=-100" > byte_range/suffix

nix-store --generate-binary-cache-key peerix-fuzz-1 "$tree/sk" "$tree/pk"
{ cat "$tree/sk"; printf '\n'; cat "$tree/pk"; printf '\n1;/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello;sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73;42;\n'
  printf 'cache.nixos.org-1:3xGTd6kbg2VyW7+eJzKUnK2JkmUl/1ZLfcZtPUMSPPU3GYLcqWYhKD8uWuB+3qJtO2ODLNUkAvTu9dOv2RUcBQ=='; } > keys/pair
