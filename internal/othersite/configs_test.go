package othersite

// The site's config files, as its operator writes them (filled in by
// text/template). Each is checked by the program that reads it.

// inventoryTmpl is hil-mock's inventory: the operator's project with the
// two machines (power address: the libvirt domain; NIC port: the tap),
// the provisioning network, an administrator, BMI's own account and the
// operator.
const inventoryTmpl = `vlan_pool:
  first: 1000
  last: 1099
projects: [bmi_infra, {{.Project}}]
users:
  - name: {{.Admin}}
    password: {{.AdminPW}}
    admin: true
  - name: {{.BMI}}
    password: {{.BMIPW}}
    projects: [bmi_infra, {{.Project}}]
  - name: {{.Operator}}
    password: {{.OperatorPW}}
    projects: [{{.Project}}]
nodes:
{{- range .Nodes}}
  - name: {{.Name}}
    project: {{$.Project}}
    power_address: {{.Domain}}
    nics:
      - label: eth0
        mac: "{{.MAC}}"
        port: {{.Tap}}
        switch: {{$.Switch}}
{{- end}}
networks:
  - name: {{.Net}}
    vlan: {{.VLAN}}
    owner: admin
    access: [bmi_infra, {{.Project}}]
`

// driversTmpl is hil-mock's drivers file (configs/hil-mock-drivers.example.yaml).
const driversTmpl = `power:
  driver: libvirt
  libvirt_socket: {{.Socket}}
switch:
  driver: lab-bridge
  lab_network: {{.Lab}}
consoles:
  driver: files
  path: {{.Consoles}}
`

// bmidTmpl is bmid's config (configs/bmid.example.yaml): one provisioning
// network, shared by the site's projects, on the bridge; bmid's own HIL
// account moves a node's NIC onto it at provision.
const bmidTmpl = `uid: {{.UID}}
admin_project: bmi_infra
log:
  format: json
  level: info
api:
  listen: {{.API}}
state:
  path: {{.State}}
ceph:
  conf: {{.Conf}}
  id: {{.CephUser}}
  keyring: {{.Keyring}}
  pool: {{.Pool}}
  op_timeout: 30s
hil:
  url: {{.HIL}}
  provisioning_network: {{.Net}}
  user: {{.BMI}}
  password_file: {{.PWFile}}
iscsi:
  listen: ["{{.Bridge}}:3260"]
  portal: {{.Bridge}}:3260
boot:
  interfaces: [{{.BridgeIf}}]
  base_url: http://{{.Bridge}}:8081
  http_listen: {{.Bridge}}:8081
  dhcp:
    mode: server
    range_start: {{.Base}}100
    range_end: {{.Base}}199
    netmask: "{{.Prefix}}"
    server_ip: {{.Bridge}}
  tftp:
    listen: {{.Bridge}}:69
    root: /usr/lib/ipxe
`

// siteTmpl is bmi-uat's site config: capabilities boots and consoles, the
// consoles read through HIL (hil_consoles), and no console directory.
const siteTmpl = `name: {{.Name}}
capabilities: [boots, consoles]
api_url: {{.API}}
hil_url: {{.HIL}}
credentials:
  admin:
    user: {{.Admin}}
    password_env: OTHERSITE_ADMIN_PASSWORD
  operator:
    user: {{.Operator}}
    password_env: OTHERSITE_OPERATOR_PASSWORD
project: {{.Project}}
nodes:
{{- range .Nodes}}
  - name: {{.Name}}
    nic: eth0
{{- end}}
ceph:
  conf: {{.Conf}}
  pool: {{.Pool}}
  image_mib: 16
iscsi:
  portal: {{.Portal}}
netns: {{.NetNS}}
hil_consoles: true
boot_image: {{.Image}}
boot_timeout: 10m
`
