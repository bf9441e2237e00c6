@foothold
Feature: An attacker on the provisioning network
  A machine on the provisioning network that is not a node (the site's foothold: a tenant's own
  machine, say) tries what an attacker would to get a node's boot script, its disk's CHAP secret
  and its disk. Every attempt fails, and bmid's audit log records each one. The site needs a
  foothold (site key `foothold`); elsewhere the scenario is skipped.

  Background:
    Given an RBD image "base" in the site's pool
    And the administrator imported RBD image "base" into my project as "golden"

  Scenario: A stranger on the provisioning network gets no script, no secret and no disk
    When I provision node A from image "golden"
    Then the foothold gets no boot script of node A by its MAC without its lease
    And the foothold gets no boot script of node A by its name
    And the foothold cannot log in to node A's disk with its initiator name and no secret
    And after 12 wrong CHAP secrets for node A's disk the foothold is throttled
    And the audit log records the foothold's attempts on node A
