#!/bin/sh
touch /tmp/flotilla-pwned
