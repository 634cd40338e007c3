package main

import (
	"errors"
	"log/slog"

	"github.com/rookery/rookery/node"
)

// reloader is what SIGHUP does to a running node.
type reloader struct {
	n     *node.Node
	log   *slog.Logger
	level *slog.LevelVar
	file  string
	flags map[string]string
	// running are the key/values the node runs with: those it started
	// with, with the options that changed live since then updated. A
	// change that needs a restart stays different, so every reload
	// repeats that it is pending.
	running map[string]string
}

// reload re-reads the users file and the TLS certificate, then the
// config file: the options that can change live (log_level) take effect,
// the others are named as needing a restart. A config file with problems changes nothing.
func (r *reloader) reload() {
	r.log.Info("reloading", "signal", "hangup")
	r.n.ReloadUsers()
	r.n.ReloadCertificate()
	if r.file == "" {
		r.log.Info("reload done", "restart_needed", 0)
		return
	}
	ld, err := loadConfig(r.file, r.flags)
	if err != nil {
		var ce *node.ConfigError
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				r.log.Error("config file problem", "file", r.file, "problem", p)
			}
		}
		r.log.Error("config file not reloaded; the node keeps its settings", "file", r.file, "err", err)
		return
	}
	warnUnknown(r.log, r.file, ld.unknown)
	var restart []string
	for _, k := range node.ChangedOptions(r.running, ld.kv) {
		switch k {
		case "log_level":
			r.level.Set(ld.cfg.LogLevel)
			if v, ok := ld.kv[k]; ok {
				r.running[k] = v
			} else {
				delete(r.running, k)
			}
			r.log.Info("log level changed", "log_level", ld.cfg.LogLevel)
		default:
			restart = append(restart, k)
		}
	}
	if len(restart) > 0 {
		r.log.Warn("config options changed that take effect only after a restart", "file", r.file, "options", restart)
	}
	r.log.Info("reload done", "restart_needed", len(restart))
}
