# SPDX-License-Identifier: MIT
EXTRA_DIST += etc/notifyq.yaml etc/notifyq.demo.yaml
