package main

import "time"

const (
	defaultBookmarkInterval = 10 * time.Second
	defaultCompactInterval  = 5 * time.Minute
	defaultDefragInterval   = time.Hour
	defaultShutdownTimeout  = 10 * time.Second
)
