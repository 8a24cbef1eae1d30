#!/bin/sh
# Baked into the smoke root filesystem as /sbin/avkit-smoke-init and started as PID 1
# (kernel option init=/sbin/avkit-smoke-init). It only mounts the run's staging disk
# (second virtio disk, read-only) on /smoke and hands over to the run's own script, so
# that the script can change without rebuilding the root filesystem.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
if mount -t ext4 -o ro /dev/vdb /smoke && [ -f /smoke/guest.sh ]; then
    exec /bin/sh /smoke/guest.sh
fi
echo "AVSMOKE guest/stage FAIL cannot mount the staging disk /dev/vdb on /smoke"
echo o > /proc/sysrq-trigger
sleep 60
