#!/usr/bin/env bash
# Sets up dpemu on a fresh Debian machine: system tools the tests and benchmarks use
# (tshark for validation, libpcap-dev for the optional live-capture addon, iproute2/iptables/ipset
# for the kernel differential tests, tcpreplay for the tcprewrite comparison), npm packages, build.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=()
command -v tshark >/dev/null 2>&1 || pkgs+=(tshark)
[ -e /usr/include/pcap/pcap.h ] || pkgs+=(libpcap-dev)
command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
command -v iptables-restore >/dev/null 2>&1 || pkgs+=(iptables)
command -v ipset >/dev/null 2>&1 || pkgs+=(ipset)
command -v tcprewrite >/dev/null 2>&1 || pkgs+=(tcpreplay)
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${pkgs[*]} (run: sudo apt-get install -y ${pkgs[*]})" >&2
  fi
fi

npm ci --no-audit --no-fund
npm run build
