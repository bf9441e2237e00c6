@outages
Feature: Outages of the services BMI depends on
  When Ceph is down, BMI says so in one line and changes nothing; once one call has waited for
  it in vain, the next ones say at once that it is unreachable; once it is back, the same
  operation works. (HIL down is in errors.feature.)

  Background:
    Given an RBD image "base" in the site's pool
    And the administrator imported RBD image "base" into my project as "golden"

  @ceph-stop
  Scenario: Ceph is down
    When Ceph becomes unreachable
    And I try to provision node A from image "golden"
    Then it fails as "unavailable" with a one-line message naming "ceph"
    When the administrator tries to import RBD image "base" into my project under the exact name "golden-2"
    Then it fails as "unavailable" with a one-line message naming "ceph is unreachable"
    When Ceph is back
    Then my project's images are unchanged
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I provision node A from image "golden"
    Then BMI, Ceph, iSCSI and HIL agree about my project
