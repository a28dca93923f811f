import{j as r,d as s}from"./index-BtJ4-ujf.js";function e(){return r.jsx(s,{order:2,children:"Orgs"})}export{e as default};
