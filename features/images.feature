@images
Feature: Images
  An operator brings golden images into BMI from Ceph, copies, moves and renames them between
  projects, exports them back to Ceph, and uploads or downloads them.

  Background:
    Given an RBD image "base" in the site's pool

  Scenario: Import an RBD image into my project
    When the administrator imports RBD image "base" into my project as "golden"
    Then my project has the image "golden"
    And BMI, Ceph, iSCSI and HIL agree about my project

  @two-tenants
  Scenario: Copy, move and rename an image across projects
    Given the administrator imported RBD image "base" into my project as "golden"
    When the administrator copies image "golden" of my project to the other project as "copy"
    Then the other project has the image "copy"
    And my project still has the image "golden"
    When the administrator moves image "copy" of the other project to my project as "moved"
    Then my project has the image "moved"
    And the other project does not have the image "copy"
    When I rename image "moved" to "renamed"
    Then my project has the image "renamed"
    And my project does not have the image "moved"
    And BMI, Ceph, iSCSI and HIL agree about my project

  Scenario: Export an image to a new RBD image
    Given the administrator imported RBD image "base" into my project as "golden"
    When the administrator exports image "golden" to RBD image "exported"
    Then the RBD image "exported" is in the site's pool with the size of image "golden"

  Scenario: Upload and download round trip
    When I upload 8 MiB of random data as image "uploaded"
    Then my project has the image "uploaded"
    And downloading image "uploaded" gives back the same bytes
