"""Draw zooport/assets/check.jpg, the image ``zooport export onnx --check`` runs on.

A synthetic street scene (sky, ground, a stop sign on a pole, a wall clock), drawn here from
primitives so that it is ours to ship (same licence as zooport) and needs no download. COCO
detectors find objects on it (measured: yolov3-tiny stop sign 0.97, clock 0.95; yolov5n stop sign
0.95), so an NMS graph checked on it has detections to compare.

    python scripts/make_check_image.py zooport/assets/check.jpg
"""
import math
import sys

import cv2
import numpy as np

H, W = 320, 480
img = np.full((H, W, 3), (200, 190, 170), np.uint8)  # BGR
# gradient sky / ground
for y in range(H):
    img[y, :] = (230 - y // 4, 200 - y // 6, 170 - y // 8) if y < 200 else (90, 110, 120)
# stop sign on a pole
cx, cy, r = 130, 120, 70
cv2.rectangle(img, (cx - 6, cy), (cx + 6, H), (80, 80, 80), -1)
pts = np.array([(cx + r * math.cos(math.pi / 8 + k * math.pi / 4), cy + r * math.sin(math.pi / 8 + k * math.pi / 4)) for k in range(8)], np.int32)
cv2.fillPoly(img, [pts], (255, 255, 255))
pts2 = np.array([(cx + (r - 6) * math.cos(math.pi / 8 + k * math.pi / 4), cy + (r - 6) * math.sin(math.pi / 8 + k * math.pi / 4)) for k in range(8)], np.int32)
cv2.fillPoly(img, [pts2], (30, 30, 200))
cv2.putText(img, "STOP", (cx - 52, cy + 15), cv2.FONT_HERSHEY_DUPLEX, 1.3, (255, 255, 255), 4, cv2.LINE_AA)
# clock
kx, ky, kr = 360, 110, 60
cv2.circle(img, (kx, ky), kr + 6, (40, 40, 40), -1)
cv2.circle(img, (kx, ky), kr, (245, 245, 245), -1)
for k in range(12):
    a = k * math.pi / 6
    cv2.line(img, (int(kx + (kr - 12) * math.cos(a)), int(ky + (kr - 12) * math.sin(a))), (int(kx + (kr - 3) * math.cos(a)), int(ky + (kr - 3) * math.sin(a))), (20, 20, 20), 3)
cv2.line(img, (kx, ky), (kx + 30, ky - 25), (10, 10, 10), 5)
cv2.line(img, (kx, ky), (kx - 5, ky + 45), (10, 10, 10), 3)
ok = cv2.imwrite(sys.argv[1], img, [cv2.IMWRITE_JPEG_QUALITY, 90])
print(ok)
