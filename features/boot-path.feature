@boot-path
Feature: Booting through a faulty boot network
  Real provisioning networks lose packets and answer late. With a fifth of the DHCP, TFTP and boot
  HTTP requests dropped and every answer 200 ms late (bmid's boot.faults), every node still boots
  its disk: DHCP and TFTP retry, and a node whose network boot gave up (its first script fetch
  lost) is power-cycled through HIL, as an operator's tooling would. The log says how long each boot
  took and how many power-ons, and the report charts BMI's milestones of each.

  @boot-faults @boots
  Scenario: Every node boots through a lossy, slow boot network
    Given the site's bootable image, called "bootable"
    And the boot network loses 20 % of DHCP, TFTP and HTTP requests and answers each 200 ms late
    When I provision node A from image "bootable"
    And I provision node B from image "bootable"
    Then node A and node B boot to their markers
    When I deprovision node A
    And I deprovision node B
    And the boot network is healthy again
    Then BMI, Ceph, iSCSI and HIL agree about my project
