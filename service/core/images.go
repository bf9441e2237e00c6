package core

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// rbdNameRe is what BMI accepts as the name of a Ceph image it did not
// create (import sources, export destinations).
var rbdNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (s *Service) validateRBDName(what, name string) error {
	if !rbdNameRe.MatchString(name) {
		return fault.Errorf(fault.Invalid, "%s %q: want 1 to 128 letters, digits, '.', '_' or '-'", what, name)
	}
	if strings.HasPrefix(name, CephPrefix(s.cfg.UID)) || strings.HasPrefix(name, s.tmpPrefix()) {
		return fault.Errorf(fault.Invalid, "%s %q: names starting %q belong to BMI", what, name, CephPrefix(s.cfg.UID))
	}
	return nil
}

func (s *Service) tmpPrefix() string { return s.cfg.UID + "tmp-" }

// readyImage returns a ready row of one of the kinds.
func (s *Service) readyImage(ctx context.Context, project, name string, kinds ...Kind) (Image, error) {
	im, err := s.rows.Image(ctx, project, name)
	if err != nil {
		return Image{}, err
	}
	ok := false
	for _, k := range kinds {
		ok = ok || im.Kind == k
	}
	if !ok {
		return Image{}, fault.Errorf(fault.Invalid, "%q in project %q is a %s", name, project, im.Kind)
	}
	if im.State != StateReady {
		return Image{}, fault.Errorf(fault.Conflict, "%s %q in project %q is %s", im.Kind, name, project, im.State)
	}
	return im, nil
}

// absent checks that project has no row named name.
func (s *Service) absent(ctx context.Context, project, name string) error {
	_, err := s.rows.Image(ctx, project, name)
	if err == nil {
		return fmt.Errorf("%q in project %q: %w", name, project, fault.ErrExists)
	}
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	}
	return err
}

// MoveImage moves and/or renames an image or snapshot. It changes the
// database only: the Ceph name comes from the row's id.
func (s *Service) MoveImage(ctx context.Context, who Principal, srcProject, name, dstProject, newName string) (Image, error) {
	if newName == "" {
		newName = name
	}
	if err := s.member(ctx, who, srcProject); err != nil {
		return Image{}, err
	}
	if err := s.member(ctx, who, dstProject); err != nil {
		return Image{}, err
	}
	if err := ValidateName("image name", newName); err != nil {
		return Image{}, err
	}
	unlock, err := s.lock("move", imageKey(srcProject, name), imageKey(dstProject, newName))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	im, err := s.readyImage(ctx, srcProject, name, KindImage, KindSnapshot)
	if err != nil {
		return Image{}, err
	}
	if err := s.rows.MoveImage(ctx, im.ID, dstProject, newName, srcProject != dstProject); err != nil {
		return Image{}, err
	}
	return s.rows.Image(ctx, dstProject, newName)
}
