@errors
Feature: Errors operators hit
  A mistake gets the right kind of error and a one-line message that names what the operator
  typed, and changes nothing.

  Background:
    Given an RBD image "base" in the site's pool
    And the administrator imported RBD image "base" into my project as "golden"

  Scenario Outline: A bad image name is refused
    When the administrator tries to import RBD image "base" into my project under the exact name "<name>"
    Then it fails as "invalid" with a one-line message naming "<shown>"
    And my project's images are unchanged

    Examples:
      | name          | shown         |
      | -leading-dash | -leading-dash |
      | has space     | has space     |
      | semi;colon    | semi;colon    |

  Scenario: An unknown node
    When I try to provision the unknown node "no-such-node-9" from image "golden"
    Then it fails as "not_found" with a one-line message naming "no-such-node-9"
    And my project's images are unchanged

  Scenario: An unknown NIC
    When I try to provision node A through the unknown NIC "no-such-nic" from image "golden"
    Then it fails as "not_found" with a one-line message naming "no-such-nic"
    And my project's images are unchanged

  Scenario: An unknown image
    When I try to provision node A from image "never-imported"
    Then it fails as "not_found" with a one-line message naming the image "never-imported"
    And my project's images are unchanged

  Scenario: Provisioning a node twice
    Given I provision node A from image "golden"
    When I try to provision node A from image "golden" again
    Then it fails as "conflict" with a one-line message naming the node "node A"
    And my project's images are unchanged

  Scenario: Removing an image that disks were cloned from
    Given I provision node A from image "golden"
    When I try to remove image "golden"
    Then it fails as "conflict" with a one-line message naming the image "golden"
    And my project still has the image "golden"

  Scenario: Wrong credentials
    When I try to list my project's images with a wrong password
    Then it fails as "unauthenticated" with a one-line message naming ""

  @two-tenants
  Scenario: Another tenant's project
    When I try to list the other project's images
    Then it fails as "forbidden" with a one-line message naming the project "the other"
    When the other tenant tries to remove image "golden" of my project
    Then it fails as "forbidden" with a one-line message naming the project "my"
    And my project still has the image "golden"

  @hil-stop
  Scenario: HIL is down
    When HIL becomes unreachable
    And I try to provision node A from image "golden"
    Then it fails as "unavailable" with a one-line message naming "HIL"
    When HIL is back
    Then my project's images are unchanged
    And BMI, Ceph, iSCSI and HIL agree about my project
    When I provision node A from image "golden"
    Then BMI, Ceph, iSCSI and HIL agree about my project
